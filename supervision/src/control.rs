//! Operator commands to a running node, as they arrive on the admin socket
//! (one JSON object per line, e.g. `{"command": "resize", "workers": 4}`).

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Command {
    /// Version, uptime, pool, queue, restarts, dependency health.
    Status,
    /// Sets the transcoder pool size, live; the prefetch follows.
    Resize { workers: usize },
    /// Stops taking new jobs; those in hand finish.
    Drain,
    /// Takes new jobs again.
    Resume,
}

/// Largest pool a resize accepts.
pub const MAX_WORKERS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_commands_and_refuses_others() {
        let parse = |s: &str| serde_json::from_str::<Command>(s);
        assert_eq!(parse(r#"{"command":"status"}"#).unwrap(), Command::Status);
        assert_eq!(
            parse(r#"{"command":"resize","workers":3}"#).unwrap(),
            Command::Resize { workers: 3 }
        );
        assert_eq!(parse(r#"{"command":"drain"}"#).unwrap(), Command::Drain);
        assert_eq!(parse(r#"{"command":"resume"}"#).unwrap(), Command::Resume);
        for bad in [
            r#"{"command":"resize"}"#,
            r#"{"command":"reboot"}"#,
            "status",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
