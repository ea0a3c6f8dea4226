//! The addresses of a node's doors (`--listen`, `--web`, `--ftp`, `--peer-listen`): checked
//! while the flags are parsed, before anything is created or bound, and completed from
//! `--listen` when they name no host. A node limited to loopback (`--listen 127.0.0.1:P`)
//! keeps every door on loopback unless a door's own flag says otherwise (issue 20).

/// A door's address flag: `HOST:PORT`, or `:PORT` for the `--listen` host. A value that is
/// no address at all is most often a folder put after a flag whose value is optional
/// (`meshfs node --ftp cam1`): the error says how to write that.
pub fn parse(s: &str) -> Result<String, String> {
    let port_ok = s
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    if port_ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not an address: expected HOST:PORT, or :PORT for the --listen host (to \
             serve a folder named {s}, put it before the flag: `meshfs node {s} --ftp`)"
        ))
    }
}

/// `addr` as a socket address to bind: its own host, or else `listen`'s (`0.0.0.0` when
/// neither names one).
pub fn on_listen_host(addr: &str, listen: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => format!("{}:{port}", listen_host(listen)),
        None => addr.to_owned(),
    }
}

/// The host part of `--listen` (`[::1]` keeps its brackets), `0.0.0.0` when it has none.
fn listen_host(listen: &str) -> &str {
    match listen.rsplit_once(':') {
        Some((host, _)) if !host.is_empty() => host,
        _ => "0.0.0.0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_the_listen_host() {
        assert_eq!(parse("127.0.0.1:2121").unwrap(), "127.0.0.1:2121");
        assert_eq!(parse("[::1]:0").unwrap(), "[::1]:0");
        assert_eq!(parse(":2121").unwrap(), ":2121");
        for bad in ["cam1", "cam1:ftp", "", "127.0.0.1:99999"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains("is not an address"), "{e}");
        }
        assert!(
            parse("cam1")
                .unwrap_err()
                .contains("meshfs node cam1 --ftp")
        );
        assert_eq!(on_listen_host(":2121", "127.0.0.1:4044"), "127.0.0.1:2121");
        assert_eq!(on_listen_host(":8044", "[::1]:0"), "[::1]:8044");
        assert_eq!(on_listen_host(":0", ":4044"), "0.0.0.0:0");
        assert_eq!(
            on_listen_host("10.0.0.2:21", "127.0.0.1:4044"),
            "10.0.0.2:21"
        );
    }
}
