//! The node's admin socket (one JSON object per line each way), for the
//! scenarios that need a node to hold back its queue consumer: a backlog
//! is built up while nodes are drained, then released at once.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Clone)]
pub struct Admin {
    socket: PathBuf,
}

impl Admin {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
        }
    }

    /// Sends one command; answers the node's reply.
    pub async fn command(&self, command: serde_json::Value) -> Result<serde_json::Value> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .with_context(|| format!("admin socket {}", self.socket.display()))?;
        let (read, mut write) = stream.into_split();
        let mut line = command.to_string();
        line.push('\n');
        write.write_all(line.as_bytes()).await?;
        let mut answer = String::new();
        BufReader::new(read).read_line(&mut answer).await?;
        let answer: serde_json::Value =
            serde_json::from_str(&answer).context("admin socket answer")?;
        if answer["ok"] != true {
            bail!("admin command {command} refused: {}", answer["error"]);
        }
        Ok(answer)
    }

    pub async fn drain(&self) -> Result<()> {
        self.command(serde_json::json!({ "command": "drain" }))
            .await
            .map(drop)
    }

    pub async fn resume(&self) -> Result<()> {
        self.command(serde_json::json!({ "command": "resume" }))
            .await
            .map(drop)
    }

    /// The node's name (as on the job records it converts) and pool size.
    pub async fn describe(&self) -> Result<(String, u64)> {
        let status = self
            .command(serde_json::json!({ "command": "status" }))
            .await?;
        Ok((
            status["node"].as_str().unwrap_or_default().to_owned(),
            status["pool"]["size"].as_u64().unwrap_or_default(),
        ))
    }
}
