//! SIGHUP: re-read the configuration and apply what can change live — the
//! log filter, the transcoder pool size and the mailbox capacities — then say in the log what else
//! changed and needs a restart. Values are not logged (some are secrets),
//! only the names of the settings.

use std::collections::BTreeMap;

use ractor::ActorRef;
use tracing::{info, warn};
use tracing_subscriber::{EnvFilter, Registry, reload};
use vidaud_actors::Settings;
use vidaud_supervision::{Command, RootMsg};

pub type LogHandle = reload::Handle<EnvFilter, Registry>;

/// Settings applied without a restart.
const LIVE: [&str; 2] = ["log.level", "transcoder.workers"];

/// Whether a setting is applied without a restart (all mailbox capacities are).
fn is_live(key: &str) -> bool {
    LIVE.contains(&key) || key.starts_with("mailboxes.")
}

/// `section.key → value` for every setting.
fn flatten(settings: &Settings) -> BTreeMap<String, serde_json::Value> {
    let mut flat = BTreeMap::new();
    if let Ok(serde_json::Value::Object(sections)) = serde_json::to_value(settings) {
        for (section, values) in sections {
            if let serde_json::Value::Object(values) = values {
                for (key, value) in values {
                    flat.insert(format!("{section}.{key}"), value);
                }
            }
        }
    }
    flat
}

/// The names of the settings that differ.
pub fn changed(old: &Settings, new: &Settings) -> Vec<String> {
    let (old, new) = (flatten(old), flatten(new));
    new.iter()
        .filter(|(key, value)| old.get(*key) != Some(value))
        .map(|(key, _)| key.clone())
        .collect()
}

/// Applies `new` over `current` as far as it can live; `current` then
/// holds what is in force.
pub async fn apply(
    current: &mut Settings,
    new: Settings,
    root: &ActorRef<RootMsg>,
    log: &LogHandle,
) {
    let changes = changed(current, &new);
    if changes.is_empty() {
        info!("SIGHUP: configuration unchanged");
        return;
    }
    if new.log.level != current.log.level {
        let applied =
            EnvFilter::try_new(&new.log.level).is_ok_and(|filter| log.reload(filter).is_ok());
        if applied {
            info!(from = %current.log.level, to = %new.log.level, "SIGHUP: log level changed");
            current.log.level = new.log.level.clone();
        } else {
            warn!(level = %new.log.level, "SIGHUP: log.level is not a valid filter; kept the old one");
        }
    }
    if new.transcoder.workers != current.transcoder.workers {
        let workers = new.transcoder.workers;
        let call = root
            .call(
                |reply| RootMsg::Control {
                    command: Command::Resize { workers },
                    reply,
                },
                Some(std::time::Duration::from_secs(30)),
            )
            .await;
        match call {
            Ok(ractor::rpc::CallResult::Success(answer)) if answer["ok"] == true => {
                info!(
                    from = current.transcoder.workers,
                    to = workers,
                    "SIGHUP: transcoder pool resized"
                );
                current.transcoder.workers = workers;
            }
            _ => warn!(
                workers,
                "SIGHUP: the pool could not be resized; kept its size"
            ),
        }
    }
    if new.mailboxes != current.mailboxes {
        let capacities = new.mailboxes.clone();
        let call = root
            .call(
                |reply| RootMsg::SetMailboxes { capacities, reply },
                Some(std::time::Duration::from_secs(60)),
            )
            .await;
        if matches!(call, Ok(ractor::rpc::CallResult::Success(()))) {
            info!(?new.mailboxes, "SIGHUP: mailbox capacities changed");
            current.mailboxes = new.mailboxes.clone();
        } else {
            warn!("SIGHUP: the mailbox capacities could not be changed; kept them");
        }
    }
    let needs_restart: Vec<&String> = changes.iter().filter(|k| !is_live(k)).collect();
    if !needs_restart.is_empty() {
        warn!(
            ?needs_restart,
            "SIGHUP: these settings changed but take effect only after a restart"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_names_the_settings_that_differ() {
        let old = Settings::default();
        let mut new = Settings::default();
        assert!(changed(&old, &new).is_empty());
        new.transcoder.workers = 7;
        new.http.listen = "127.0.0.1:9".into();
        new.auth.jwt_secret = "secret".into();
        assert_eq!(
            changed(&old, &new),
            ["auth.jwt_secret", "http.listen", "transcoder.workers"]
        );
    }
}
