//! `meshfs status`: one table of every node found (the LAN group, DNS-SD, `--node`), from each
//! node's `status` request (protocols.md §1), with a warning column for what needs a look:
//! disk nearly full, no events for a long time, a version other than this one, two nodes under
//! one name, a node that does not answer.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use meshfs_core::status::NodeStatus;
use meshfs_core::{Client, Credentials, NodeAddr};
use serde_json::json;

use super::group::{DnsSdArgs, GroupAddr};

/// How long one node has to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  meshfs status                          every node on the LAN, one line each
  meshfs status --node 10.0.0.7:4044     also this node (networks without multicast)
  meshfs status --watch                  refresh every 2 s until Ctrl-C
  meshfs status --json | jq '.[] | select(.warnings != [])'

Columns: NAME ADDRESS VERSION UPTIME SHARE (size, files) FREE LAST-REC (time since the last
file was closed after writing) CONNS WARNINGS. Exits 0 even when a node warns; 1 only when
nothing could be asked.")]
pub struct Args {
    #[command(flatten)]
    pub group: GroupAddr,
    #[command(flatten)]
    pub dnssd: DnsSdArgs,
    /// Also ask this node (repeatable; HOST[:PORT], port 4044 by default).
    #[arg(long, value_name = "HOST:PORT")]
    pub node: Vec<NodeAddr>,
    /// Do not ask the LAN (multicast group and DNS-SD): only the `--node`s.
    #[arg(long)]
    pub no_discovery: bool,
    /// How long to listen for the LAN's answers.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Print JSON: an array of nodes (with --watch, one array per line).
    #[arg(long)]
    pub json: bool,
    /// Ask again every INTERVAL until interrupted.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s",
          value_parser = humantime::parse_duration)]
    pub watch: Option<Duration>,
    /// Warn about a node that logged no file event for this long.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub quiet_after: Duration,
}

/// One node found, and what it answered.
struct Row {
    name: String,
    addr: String,
    answer: Result<NodeStatus, String>,
    warnings: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Some(every) = args.watch else {
        return print_once(&args).await;
    };
    loop {
        if !args.json {
            // Home the cursor and clear the screen, as watch(1) does.
            print!("\x1b[H\x1b[2J");
        }
        print_once(&args).await?;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn print_once(args: &Args) -> anyhow::Result<()> {
    let rows = gather(args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::Value::Array(rows.iter().map(row_json).collect())
        );
    } else {
        print_table(&rows, SystemTime::now());
    }
    Ok(())
}

/// Find the nodes, ask each at once, and judge the answers.
async fn gather(args: &Args) -> anyhow::Result<Vec<Row>> {
    // (name if known, address) of every node, once per address.
    let mut found: BTreeMap<String, Option<String>> = BTreeMap::new();
    if !args.no_discovery {
        let (peers, group_error) =
            super::target::ask_lan(&args.group, &args.dnssd, args.wait).await;
        if let Some(e) = group_error {
            if args.node.is_empty() && args.dnssd.no_dnssd {
                return Err(anyhow::Error::new(e).context("cannot ask the LAN group"));
            }
            eprintln!("multicast group not asked: {e}");
        }
        for p in peers.list() {
            found.insert(p.addr.to_string(), Some(p.name));
        }
    }
    for node in &args.node {
        found.entry(node.to_string()).or_insert(None);
    }
    // Every node is asked at once, each on a task of its own.
    let mut asks = tokio::task::JoinSet::new();
    for (addr, name) in found {
        asks.spawn(async move {
            let answer = match tokio::time::timeout(ASK_TIMEOUT, ask(&addr, name.as_deref())).await
            {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {ASK_TIMEOUT:?}")),
            };
            let name = match &answer {
                Ok(st) => st.name.clone(),
                Err(_) => name.unwrap_or_default(),
            };
            Row {
                name,
                addr,
                answer,
                warnings: Vec::new(),
            }
        });
    }
    let mut rows = asks.join_all().await;
    rows.sort_by(|a, b| (&a.name, &a.addr).cmp(&(&b.name, &b.addr)));
    judge(&mut rows, args.quiet_after, SystemTime::now());
    Ok(rows)
}

/// One node's `status`, through the user's trust policy (its pin checked under `name`).
async fn ask(addr: &str, name: Option<&str>) -> Result<NodeStatus, String> {
    let credentials = match name {
        Some(name) => Credentials::none().expecting(name),
        None => Credentials::none(),
    };
    let mut client = Client::connect_with(addr, &credentials)
        .await
        .map_err(|e| e.to_string())?;
    match client.node_status().await {
        Ok(st) => Ok(st),
        // A node older than `status`: say which version it runs.
        Err(e) if e.remote_code().is_some() => match client.hello().await {
            Ok(hello) => Err(format!("no status request (meshfs {})", hello.version)),
            Err(_) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// Fill the warning column.
fn judge(rows: &mut [Row], quiet_after: Duration, now: SystemTime) {
    let mut per_name: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows.iter() {
        if !row.name.is_empty() {
            *per_name.entry(row.name.clone()).or_default() += 1;
        }
    }
    for row in rows.iter_mut() {
        let mut warn = |w: String| row.warnings.push(w);
        match &row.answer {
            Err(e) => warn(format!("unreachable: {e}")),
            Ok(st) => {
                if st.disk_nearly_full() {
                    let (free, size) = (st.disk_available.unwrap_or(0), st.disk_size.unwrap_or(1));
                    warn(format!(
                        "disk nearly full ({:.1}% free)",
                        free as f64 * 100.0 / size as f64
                    ));
                }
                match st.quiet_for(now) {
                    Some(quiet) if quiet >= quiet_after => {
                        warn(format!("no events for {}", human_age(quiet)))
                    }
                    None if st.uptime_secs >= quiet_after.as_secs() => warn(format!(
                        "no events since start ({} ago)",
                        human_age(Duration::from_secs(st.uptime_secs))
                    )),
                    _ => {}
                }
                if st.version != meshfs_core::VERSION {
                    warn(format!(
                        "version {} (this is {})",
                        st.version,
                        meshfs_core::VERSION
                    ));
                }
                if st.proto != meshfs_core::proto::PROTO_VERSION {
                    warn(format!(
                        "protocol {} (this speaks {})",
                        st.proto,
                        meshfs_core::proto::PROTO_VERSION
                    ));
                }
            }
        }
        if per_name.get(&row.name).copied().unwrap_or(0) > 1 {
            row.warnings.push(format!(
                "name conflict: {} nodes are named {}",
                per_name[&row.name], row.name
            ));
        }
    }
}

fn row_json(row: &Row) -> serde_json::Value {
    let mut v = json!({
        "name": row.name,
        "address": row.addr,
        "warnings": row.warnings,
    });
    match &row.answer {
        Ok(st) => {
            v["status"] = json!({
                "version": st.version,
                "proto": st.proto,
                "id": st.id,
                "uptime_secs": st.uptime_secs,
                "share_files": st.share_files,
                "share_bytes": st.share_bytes,
                "disk_available": st.disk_available,
                "disk_size": st.disk_size,
                "last_closed": st.last_closed,
                "last_event": st.last_event,
                "connections": st.connections,
                "events": st.events,
            });
            v["error"] = serde_json::Value::Null;
        }
        Err(e) => {
            v["status"] = serde_json::Value::Null;
            v["error"] = json!(e);
        }
    }
    v
}

fn print_table(rows: &[Row], now: SystemTime) {
    let header = [
        "NAME", "ADDRESS", "VERSION", "UPTIME", "SHARE", "FREE", "LAST-REC", "CONNS", "WARNINGS",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for row in rows {
        let dash = || "-".to_owned();
        let mut cells = vec![row.name.clone(), row.addr.clone()];
        match &row.answer {
            Ok(st) => {
                let share = match (st.share_bytes, st.share_files) {
                    (Some(b), Some(f)) => format!("{} ({f} files)", human_bytes(b)),
                    _ => dash(),
                };
                let last = st.last_closed.map_or_else(dash, |t| {
                    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(t);
                    format!(
                        "{} ago",
                        human_age(now.duration_since(at).unwrap_or_default())
                    )
                });
                cells.extend([
                    st.version.clone(),
                    human_age(Duration::from_secs(st.uptime_secs)),
                    share,
                    st.disk_available.map_or_else(dash, human_bytes),
                    last,
                    st.connections.to_string(),
                ]);
            }
            Err(_) => cells.extend((0..6).map(|_| dash())),
        }
        cells.push(if row.warnings.is_empty() {
            "-".into()
        } else {
            row.warnings.join("; ")
        });
        lines.push(cells);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in &lines {
        let mut out = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i + 1 == line.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{out}");
    }
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`: the two largest units.
fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `812 B`, `1.5 KiB`, `38.9 GiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, addr: &str, st: NodeStatus) -> Row {
        Row {
            name: name.into(),
            addr: addr.into(),
            answer: Ok(st),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn warnings_name_what_needs_a_look() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let healthy = NodeStatus {
            name: "cam1".into(),
            version: meshfs_core::VERSION.into(),
            proto: meshfs_core::proto::PROTO_VERSION,
            uptime_secs: 50_000,
            disk_available: Some(500),
            disk_size: Some(1000),
            last_event: Some(999_990),
            ..Default::default()
        };
        let full = NodeStatus {
            disk_available: Some(10),
            ..healthy.clone()
        };
        let quiet = NodeStatus {
            last_event: Some(1_000_000 - 7200),
            ..healthy.clone()
        };
        let old = NodeStatus {
            version: "0.0.1".into(),
            ..healthy.clone()
        };
        let mut rows = vec![
            row("cam1", "a:1", healthy.clone()),
            row("cam2", "b:1", full),
            row("cam3", "c:1", quiet),
            row("cam4", "d:1", old),
            row("cam5", "e:1", healthy.clone()),
            row("cam5", "f:1", healthy),
            Row {
                name: "cam6".into(),
                addr: "g:1".into(),
                answer: Err("refused".into()),
                warnings: vec![],
            },
        ];
        judge(&mut rows, Duration::from_secs(3600), now);
        let w: Vec<String> = rows.iter().map(|r| r.warnings.join("; ")).collect();
        assert_eq!(w[0], "");
        assert_eq!(w[1], "disk nearly full (1.0% free)");
        assert_eq!(w[2], "no events for 2h 0m");
        assert_eq!(
            w[3],
            format!("version 0.0.1 (this is {})", meshfs_core::VERSION)
        );
        assert_eq!(w[4], "name conflict: 2 nodes are named cam5");
        assert_eq!(w[6], "unreachable: refused");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(
            human_age(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)),
            "3d 4h"
        );
        assert_eq!(human_age(Duration::from_secs(12)), "12s");
    }
}
