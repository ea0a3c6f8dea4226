//! `meshfs chat` (without `--hub`): the LAN group chat of seed 004, a line UI.
//!
//! Messages are raw UTF-8 datagrams on the group's chat port, shown as `<ip> :> <text>`, so the
//! seed's Python scripts and `socat` take part. Lines starting with `/` are the seed menu's
//! other entries: `/get NODE:PATH`, `/offer PATH`, `/offers`, `/peers`, `/quit`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::group::GroupAddr;
use anyhow::{Context, bail};
use meshfs_core::Client;
use meshfs_group::chat::{GroupChat, MAX_MESSAGE};
use meshfs_group::probe::{offer_for, probe};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const HELP: &str = "\
commands: /get NODE:PATH [DEST]   download a file (NODE: a name, or meshfs://HOST:PORT/PATH)
          /offer PATH             offer a file of the local node (--node)
          /offers                 list offered files
          /peers                  list nodes
          /quit                   leave (also ^D)
anything else is sent to the group";

#[derive(clap::Args, Debug, Clone)]
pub struct GroupChatArgs {
    #[command(flatten)]
    pub group: GroupAddr,
    /// DNS-SD, asked beside the group by `/peers` and `/get NAME:PATH`.
    #[command(flatten)]
    pub dnssd: super::group::DnsSdArgs,
    /// The local node, for `/offer`.
    #[arg(long, default_value = "127.0.0.1:4044")]
    pub node: String,
    /// How long `/get`, `/offers` and `/peers` wait for nodes to answer.
    #[arg(long, visible_alias = "lookup-wait", default_value = "1s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

pub async fn run(args: GroupChatArgs) -> anyhow::Result<()> {
    let group = args.group.group(None);
    let chat = GroupChat::join(&group, args.group.chat_port).with_context(|| {
        format!(
            "cannot join the group chat {}:{}",
            group.addr, args.group.chat_port
        )
    })?;
    // The first line says the membership is in place: scripts (and tests) wait for it.
    println!(
        "joined the group chat {}:{} on {}",
        group.addr, args.group.chat_port, group.iface
    );
    let tty = std::io::stdin().is_terminal();
    let prompt = || {
        if tty {
            print!("> ");
            let _ = std::io::stdout().flush();
        }
    };
    if tty {
        println!("{HELP}");
    }
    prompt();
    let mut stdin = BufReader::new(tokio::io::stdin());
    let stop = crate::signals::terminate();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            got = chat.recv() => match got {
                Ok((_, lines)) => {
                    let mut out = std::io::stdout().lock();
                    for line in lines {
                        // Erase the prompt, show the message, redraw the prompt.
                        if tty {
                            let _ = write!(out, "\r\x1b[K");
                        }
                        let _ = writeln!(out, "{line}");
                    }
                    drop(out);
                    prompt();
                }
                Err(e) => tracing::debug!(error = %e, "chat socket error"),
            },
            line = read_line(&mut stdin) => {
                let Some(line) = line? else { break };
                match command(&args, &chat, &line).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => eprintln!("error: {}", crate::error_text(&e)),
                }
                prompt();
            }
            () = &mut stop => break,
        }
    }
    Ok(())
}

/// One line of input, at most [`MAX_MESSAGE`] bytes (longer lines are refused whole).
/// `None` at end of input.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> anyhow::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(MAX_MESSAGE as u64 + 2)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && n as u64 == MAX_MESSAGE as u64 + 2 {
        // Skip the rest of the overlong line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let m = (&mut *r)
                .take(64 << 10)
                .read_until(b'\n', &mut rest)
                .await?;
            if m == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
        eprintln!("error: line longer than {MAX_MESSAGE} bytes: not sent");
        return Ok(Some(String::new()));
    }
    let s = String::from_utf8_lossy(&buf);
    Ok(Some(s.trim_end_matches(['\n', '\r']).to_owned()))
}

/// Run one input line; true to quit.
async fn command(args: &GroupChatArgs, chat: &GroupChat, line: &str) -> anyhow::Result<bool> {
    let group = args.group.group(None);
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match word {
        "" => {}
        "/quit" | "/exit" => return Ok(true),
        "/help" => println!("{HELP}"),
        "/offers" => {
            for o in probe(&group, args.group.group_port, args.wait)
                .await?
                .offers
            {
                super::peers::print_offer(&o);
            }
        }
        "/peers" => {
            let (peers, group_error) =
                super::target::ask_lan(&args.group, &args.dnssd, args.wait).await;
            if let Some(e) = group_error {
                eprintln!("multicast group not asked: {e}");
            }
            for p in peers.list() {
                println!("{} {}", p.name, p.addr);
            }
        }
        "/offer" => {
            if rest.is_empty() {
                bail!("usage: /offer PATH");
            }
            let node_ip = args
                .node
                .parse::<std::net::SocketAddr>()
                .ok()
                .map(|a| a.ip());
            let o = offer_for(
                &args.group.group(node_ip),
                args.group.group_port,
                &args.node,
                rest,
            )
            .await?;
            print!("offered ");
            super::peers::print_offer(&o);
        }
        "/get" => {
            let (src, dest) = rest.split_once(' ').unwrap_or((rest, ""));
            // NAME:PATH through discovery, or a meshfs:// URL.
            let (addr, path) = if let Ok(url) = src.parse::<meshfs_core::RemotePath>() {
                (url.addr, url.path)
            } else {
                let Some((node, path)) = src.split_once(':') else {
                    bail!("usage: /get NODE:PATH [DEST]  or  /get meshfs://HOST:PORT/PATH [DEST]");
                };
                let addr =
                    super::target::find_node(&args.group, &args.dnssd, node, args.wait).await?;
                (addr.to_string(), path.trim_start_matches('/').to_owned())
            };
            let path = path.as_str();
            let dest = if dest.is_empty() {
                PathBuf::from(path.rsplit('/').next().unwrap_or(path))
            } else {
                PathBuf::from(dest)
            };
            let n = fetch(&addr, path, &dest).await?;
            println!("got {src} -> {} ({n} bytes)", dest.display());
        }
        w if w.starts_with('/') => bail!("unknown command {w} (try /help)"),
        _ => chat.send(line).await?,
    }
    Ok(false)
}

/// Download one file, authenticating with `MESHFS_CLIENT_PASSWORD` (or a prompt on the
/// terminal) when the node asks for a password. Written to a hidden temporary file beside DEST (removed if the
/// download fails), renamed over DEST when complete.
async fn fetch(addr: &str, path: &str, dest: &std::path::Path) -> anyhow::Result<u64> {
    use meshfs_core::proto::Code;
    let mut c = Client::connect(addr).await?;
    match c.open(path).await {
        Err(e) if e.remote_code() == Some(Code::AuthRequired) => {
            let p = match crate::password::client_from_env()? {
                Some(p) => p,
                None if std::io::stdin().is_terminal() => crate::password::prompt("password: ")?,
                None => bail!(
                    "{path} is protected: set {} to its password",
                    crate::password::CLIENT_ENV
                ),
            };
            // An offered file has a password of its own; else it is the share's.
            let proven = match c.auth_for(path, p.expose()).await {
                Err(e) if e.remote_code() == Some(Code::NotFound) => c.auth(p.expose()).await,
                r => r,
            };
            proven.context("password refused")?;
            c.open(path).await?;
        }
        r => r?,
    }
    let (dir, name) = meshfs_core::Dir::open_parent(dest)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    let temp = dir
        .temp_file()
        .with_context(|| format!("cannot create a file beside {}", dest.display()))?;
    let mut file = tokio::fs::File::from_std(temp.file().try_clone()?);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut total = 0u64;
    loop {
        buf.clear();
        let n = c.read(1 << 20, &mut buf).await?;
        if n == 0 {
            break;
        }
        file.write_all(&buf).await?;
        total += n;
    }
    file.flush().await?;
    drop(file);
    let _ = c.close().await;
    // `persist` syncs, then renames over DEST: off the async threads.
    tokio::task::spawn_blocking(move || temp.persist(&name)).await??;
    Ok(total)
}
