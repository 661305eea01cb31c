//! The admin socket: `{data_dir}/admin.sock`, a Unix socket only the
//! data directory's owner can open (0600), through which commands on the
//! same machine ask the running server for work that needs its log
//! (today: a garbage collection). A request is one JSON line; the answer
//! is one JSON line, `{"ok": ...}` or `{"error": "..."}`.
//!
//! No network client reaches it, so it needs no key: whoever can open it
//! can read the data directory anyway.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use billet_engine::{CollectOptions, Engine, GcReport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The socket's name in the data directory.
pub const SOCKET: &str = "admin.sock";

/// Longest request line read.
const MAX_REQUEST: u64 = 64 << 10;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Gc { dry_run: bool },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(GcReport),
    Error(String),
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Serves the socket until the returned task is aborted. Called once the
/// server holds the log (so a socket file left there is stale).
pub fn serve(data_dir: &Path, engine: Engine) -> Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(conn, &engine).await {
                    tracing::debug!(error = %e, "admin request failed");
                }
            });
        }
    }))
}

async fn answer(conn: UnixStream, engine: &Engine) -> Result<()> {
    let (read, mut write) = conn.into_split();
    let mut line = String::new();
    BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let answer = match serde_json::from_str::<Request>(&line) {
        Err(e) => Answer::Error(format!("not a request: {e}")),
        Ok(Request::Gc { dry_run }) => {
            tracing::info!(dry_run, "garbage collection asked for on the admin socket");
            match engine.collect(CollectOptions { dry_run }).await {
                Ok(r) => Answer::Ok(r),
                Err(e) => Answer::Error(e.to_string()),
            }
        }
    };
    let mut out = serde_json::to_vec(&answer)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

/// Asks the server on `data_dir` to do `req`; `None` if no server
/// listens there.
pub async fn request(data_dir: &Path, req: &Request) -> Result<Option<GcReport>> {
    let path = socket_path(data_dir);
    let conn = match UnixStream::connect(&path).await {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", path.display())),
    };
    let (read, mut write) = conn.into_split();
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut reply = String::new();
    BufReader::new(read).read_line(&mut reply).await?;
    match serde_json::from_str::<Answer>(&reply)
        .with_context(|| format!("the server's answer on {}", path.display()))?
    {
        Answer::Ok(r) => Ok(Some(r)),
        Answer::Error(e) => bail!("the server says: {e}"),
    }
}
