//! The admin socket: operators resize the pool, drain and resume a node,
//! and read its status, without a restart. One JSON object per line in
//! each direction; see README "Admin socket".
//!
//! Only the service user (or root) may talk to it: the socket is created
//! 0600, start-up refuses a path that is a symlink or belongs to someone
//! else (a planted path could redirect commands), and each connection's
//! peer uid is checked.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use futures::{SinkExt, StreamExt};
use ractor::ActorRef;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::{Framed, LinesCodec};
use tracing::{info, warn};
use vidaud_supervision::{Command, RootMsg};

/// Longest command line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin socket {0}: the path is a symlink; refusing to use it")]
    Symlink(PathBuf),
    #[error(
        "admin socket {path}: it belongs to uid {owner}, not to this service (uid {me}); refusing to replace it"
    )]
    Foreign { path: PathBuf, owner: u32, me: u32 },
    #[error("admin socket {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Binds the socket after checking what is at `path`.
pub fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    let io = |e| AdminError::Io(path.to_owned(), e);
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() {
            return Err(AdminError::Symlink(path.to_owned()));
        }
        if meta.uid() != uid() {
            return Err(AdminError::Foreign {
                path: path.to_owned(),
                owner: meta.uid(),
                me: uid(),
            });
        }
        // Our own socket, left by an earlier run.
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: UnixListener, root: ActorRef<RootMsg>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let root = root.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, root).await {
                        warn!("admin connection: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("admin socket accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, root: ActorRef<RootMsg>) -> anyhow::Result<()> {
    let peer = stream.peer_cred()?.uid();
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
    if peer != uid() && peer != 0 {
        let refusal = serde_json::json!({ "ok": false, "error": "not allowed" });
        lines.send(refusal.to_string()).await?;
        return Ok(());
    }
    while let Some(line) = lines.next().await {
        let answer = match line {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => answer(&line, &root).await,
            Err(e) => {
                // Over-long line: say so and hang up; the daemon is unaffected.
                let error =
                    serde_json::json!({ "ok": false, "error": format!("bad command line: {e}") });
                lines.send(error.to_string()).await?;
                return Ok(());
            }
        };
        lines.send(answer.to_string()).await?;
    }
    Ok(())
}

async fn answer(line: &str, root: &ActorRef<RootMsg>) -> serde_json::Value {
    let command = match serde_json::from_str::<Command>(line) {
        Ok(command) => command,
        Err(e) => {
            return serde_json::json!({
                "ok": false,
                "error": format!(
                    "not a command ({e}); send one JSON object per line: {{\"command\": \"status\"}}, \
                     {{\"command\": \"resize\", \"workers\": N}}, {{\"command\": \"drain\"}}, {{\"command\": \"resume\"}}"
                ),
            });
        }
    };
    info!(?command, "admin command");
    let call = root
        .call(
            |reply| RootMsg::Control { command, reply },
            Some(std::time::Duration::from_secs(30)),
        )
        .await;
    match call {
        Ok(ractor::rpc::CallResult::Success(value)) => value,
        _ => serde_json::json!({ "ok": false, "error": "the node did not answer in time" }),
    }
}
