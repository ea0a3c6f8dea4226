//! `meshfs node --max-upload-rate` and `--max-upload-rate-per-client` (issue 19), flattened into
//! `meshfs node`: the node's upload limits, handed to every door that sends file content as one
//! [`UploadLimits`] (so all doors draw on the same buckets).

use meshfs_core::rate::UploadLimits;

#[derive(clap::Args, Debug, Clone)]
pub struct UploadArgs {
    /// Cap what the node sends of file contents, all clients and doors together (file server in
    /// clear and TLS, web UI files and zips, FTP, GET_FILE), in bytes per second: RATE like
    /// 500K or 20M (decimal suffixes K, M, G, as `get --limit-rate`). Bursts after a pause are
    /// at most 100 ms at this rate.
    #[arg(long, value_name = "RATE", value_parser = super::get::parse_rate)]
    pub max_upload_rate: Option<u64>,
    /// Cap what each client receives, in bytes per second (RATE as --max-upload-rate). A client
    /// is the node or user ID its TLS certificate proves (meshfs programs and nodes show one),
    /// else its IP address (curl, browsers, FTP, GET_FILE, clients in clear).
    #[arg(long, value_name = "RATE", value_parser = super::get::parse_rate)]
    pub max_upload_rate_per_client: Option<u64>,
}

impl UploadArgs {
    /// The limits every door shares.
    pub fn limits(&self) -> UploadLimits {
        if self.max_upload_rate.is_some() || self.max_upload_rate_per_client.is_some() {
            tracing::info!(
                node = self.max_upload_rate,
                per_client = self.max_upload_rate_per_client,
                "upload limits (bytes per second)"
            );
        }
        UploadLimits::new(self.max_upload_rate, self.max_upload_rate_per_client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Node {
        #[command(flatten)]
        upload: UploadArgs,
    }

    fn parse(args: &[&str]) -> Result<UploadArgs, String> {
        Node::try_parse_from([&["node"], args].concat())
            .map(|n| n.upload)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rates_are_decimal_bytes_per_second_and_bad_ones_are_named() {
        let ok = parse(&[
            "--max-upload-rate",
            "20M",
            "--max-upload-rate-per-client",
            "500K",
        ])
        .unwrap();
        assert_eq!(ok.max_upload_rate, Some(20_000_000));
        assert_eq!(ok.max_upload_rate_per_client, Some(500_000));
        assert_eq!(parse(&[]).unwrap().max_upload_rate, None);
        for bad in ["0", "fast", "1.5M", "99999999999999G"] {
            let e = parse(&["--max-upload-rate", bad]).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
