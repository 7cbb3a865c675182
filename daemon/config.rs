//! Loading the settings: built-in defaults, then the TOML file, then
//! `VIDAUD_<SECTION>__<KEY>` environment variables; then secrets from their
//! `*_file` paths, and the checks that refuse an unsafe start.

use std::path::Path;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use vidaud_actors::Settings;
use vidaud_actors::auth::MIN_SECRET_LEN;
use vidaud_actors::output::OutputOptions;

pub fn load(path: &Path) -> anyhow::Result<Settings> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if path.exists() {
        figment = figment.merge(Toml::file(path));
    } else if path != Path::new("config.toml") {
        bail!("configuration file {} does not exist", path.display());
    }
    let mut settings: Settings = figment
        // Only VIDAUD_<SECTION>__<KEY> are settings; other VIDAUD_* names
        // (a wrapper's own variables) are not ours to reject.
        .merge(
            Env::prefixed("VIDAUD_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        )
        .extract()
        .map_err(|e| {
            // The environment's values are read as TOML-like values, so a
            // text setting that looks like a number (a node id "1") is one.
            let hint = if e.to_string().contains("expected a string") {
                "; to give a text setting that looks like a number or a boolean through \
                 the environment, quote it: VIDAUD_NODE__ID='\"1\"'"
            } else {
                ""
            };
            anyhow::anyhow!(
                "reading settings from {} and VIDAUD_* variables: {e}{hint}",
                path.display()
            )
        })?;
    // A secret file `serve` is to make is read once it is made
    // (`ensure_jwt_secret`); no other command needs the secret.
    let to_be_made = settings.auth.jwt_secret_create
        && !settings.auth.jwt_secret_file.is_empty()
        && !Path::new(&settings.auth.jwt_secret_file).exists();
    if !to_be_made {
        read_secret_file(
            &mut settings.auth.jwt_secret,
            &settings.auth.jwt_secret_file,
        )?;
    }
    read_secret_file(
        &mut settings.notifier.smtp_password,
        &settings.notifier.smtp_password_file,
    )?;
    Ok(settings)
}

/// `auth.jwt_secret_create`: makes the JWT secret file when there is none
/// (and no secret is given otherwise), then reads it. The file appears
/// whole or not at all (written beside it, then linked into place without
/// replacing anything), so two nodes starting at once on one volume, or a
/// crash mid-way, never leave a short or changed secret.
pub fn ensure_jwt_secret(settings: &mut Settings) -> anyhow::Result<()> {
    let file = settings.auth.jwt_secret_file.clone();
    if !settings.auth.jwt_secret_create
        || !settings.auth.jwt_secret.is_empty()
        || file.is_empty()
        || Path::new(&file).exists()
    {
        return Ok(());
    }
    let path = Path::new(&file);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    let secret: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut partial = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing the JWT secret beside {file}"))?;
    std::io::Write::write_all(&mut partial, secret.as_bytes())
        .and_then(|()| partial.as_file().sync_all())
        .with_context(|| format!("writing the JWT secret beside {file}"))?;
    match partial.persist_noclobber(path) {
        Ok(_) => tracing::info!(file = %file, "made a new JWT secret (auth.jwt_secret_create)"),
        // Another node made it first: use theirs.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.error).with_context(|| format!("making the JWT secret {file}")),
    }
    read_secret_file(&mut settings.auth.jwt_secret, &file)
}

fn read_secret_file(value: &mut String, file: &str) -> anyhow::Result<()> {
    if value.is_empty() && !file.is_empty() {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading secret file {file}"))?;
        *value = text.trim_end_matches(['\n', '\r']).to_owned();
    }
    Ok(())
}

/// Settings that would make every job or request fail are refused at
/// start-up, with the setting named.
pub fn check(settings: &Settings) -> anyhow::Result<()> {
    let default_output = OutputOptions {
        bitrate_kbps: Some(settings.transcoder.bitrate_kbps),
        ..OutputOptions::default()
    };
    default_output
        .validate()
        .map_err(|e| anyhow::anyhow!("transcoder.bitrate_kbps: {}", e.message))?;
    if settings.transcoder.workers == 0 {
        bail!("transcoder.workers must be at least 1");
    }
    if settings.transcoder.max_attempts == 0 {
        bail!("transcoder.max_attempts must be at least 1");
    }
    Ok(())
}

/// The JWT secret to sign with, or why the node must not start.
/// The token rules the `[auth]` section sets.
pub fn token_rules(settings: &Settings) -> vidaud_actors::auth::TokenRules {
    let set = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    vidaud_actors::auth::TokenRules {
        ttl_secs: settings.auth.token_ttl_secs,
        issuer: set(&settings.auth.jwt_issuer),
        audience: set(&settings.auth.jwt_audience),
    }
}

pub fn jwt_secret(settings: &Settings, dev: bool) -> anyhow::Result<Vec<u8>> {
    let secret = settings.auth.jwt_secret.as_bytes();
    if secret.len() >= MIN_SECRET_LEN {
        return Ok(secret.to_vec());
    }
    if dev {
        tracing::warn!(
            "--dev: using a random JWT secret for this run; tokens will not survive a restart"
        );
        return Ok(rand::random::<[u8; 32]>().to_vec());
    }
    let problem = if secret.is_empty() {
        "is not set".to_owned()
    } else {
        format!("is only {} bytes", secret.len())
    };
    bail!(
        "the JWT secret {problem}; it must be at least {MIN_SECRET_LEN} bytes.\n\
         Set VIDAUD_AUTH__JWT_SECRET (e.g. VIDAUD_AUTH__JWT_SECRET=$(openssl rand -hex 32)),\n\
         or put it in a file readable only by the service and set auth.jwt_secret_file\n\
         (or VIDAUD_AUTH__JWT_SECRET_FILE) to its path. For a throwaway run, pass --dev."
    )
}

#[cfg(test)]
// figment's Jail returns its own large error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn file_then_environment_override_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "vidaud.toml",
                "[http]\nlisten = \"127.0.0.1:9000\"\n[transcoder]\nworkers = 3\n",
            )?;
            jail.set_env("VIDAUD_TRANSCODER__WORKERS", "5");
            jail.set_env("VIDAUD_QUEUE__VIDEO_QUEUE", "video-test");
            jail.set_env("VIDAUD_UNRELATED", "ignored");
            let s = load(Path::new("vidaud.toml")).map_err(|e| e.to_string())?;
            assert_eq!(s.http.listen, "127.0.0.1:9000");
            assert_eq!(s.transcoder.workers, 5);
            assert_eq!(s.queue.video_queue, "video-test");
            assert_eq!(s.queue.mp3_queue, "mp3");
            assert_eq!(s.transcoder.bitrate_kbps, 192);
            Ok(())
        });
    }

    #[test]
    fn a_number_for_a_text_setting_is_refused_with_how_to_quote_it() {
        Jail::expect_with(|jail| {
            jail.set_env("VIDAUD_NODE__ID", "1");
            let error = load(Path::new("config.toml")).expect_err("a number for a text setting");
            assert!(error.to_string().contains("quote it"), "{error}");
            jail.set_env("VIDAUD_NODE__ID", "\"1\"");
            let s = load(Path::new("config.toml")).map_err(|e| e.to_string())?;
            assert_eq!(s.node.id, "1");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_explicit_file_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[http]\nlisten_on = \"x\"\n")?;
            assert!(load(Path::new("bad.toml")).is_err());
            assert!(load(Path::new("missing.toml")).is_err());
            jail.set_env("VIDAUD_HTTP__LISTN", "typo");
            assert!(
                load(Path::new("config.toml")).is_err(),
                "a misspelt key is reported"
            );
            Ok(())
        });
    }

    #[test]
    fn settings_that_break_every_job_are_refused() {
        let mut s = Settings::default();
        assert!(check(&s).is_ok());
        s.transcoder.bitrate_kbps = 100;
        assert!(check(&s).unwrap_err().to_string().contains("bitrate_kbps"));
        s.transcoder.bitrate_kbps = 128;
        s.transcoder.workers = 0;
        assert!(check(&s).is_err());
    }

    #[test]
    fn a_missing_secret_file_is_made_once_when_asked() {
        use std::os::unix::fs::PermissionsExt;
        Jail::expect_with(|jail| {
            jail.set_env("VIDAUD_AUTH__JWT_SECRET_FILE", "state/jwt-secret");
            // Not asked: a missing file is an error, as ever.
            assert!(load(Path::new("config.toml")).is_err());
            jail.set_env("VIDAUD_AUTH__JWT_SECRET_CREATE", "true");
            let mut s = load(Path::new("config.toml")).map_err(|e| e.to_string())?;
            assert!(s.auth.jwt_secret.is_empty(), "nothing made by loading");
            ensure_jwt_secret(&mut s).map_err(|e| e.to_string())?;
            let made = std::fs::read_to_string("state/jwt-secret").map_err(|e| e.to_string())?;
            assert_eq!(s.auth.jwt_secret, made);
            assert!(jwt_secret(&s, false).is_ok(), "long enough to sign with");
            let mode = std::fs::metadata("state/jwt-secret")
                .map_err(|e| e.to_string())?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            // The next start reads it and makes nothing new.
            let mut again = load(Path::new("config.toml")).map_err(|e| e.to_string())?;
            ensure_jwt_secret(&mut again).map_err(|e| e.to_string())?;
            assert_eq!(again.auth.jwt_secret, made);
            // A secret given in the environment wins; no file is made.
            jail.set_env("VIDAUD_AUTH__JWT_SECRET_FILE", "other/jwt-secret");
            jail.set_env("VIDAUD_AUTH__JWT_SECRET", "e".repeat(40));
            let mut given = load(Path::new("config.toml")).map_err(|e| e.to_string())?;
            ensure_jwt_secret(&mut given).map_err(|e| e.to_string())?;
            assert_eq!(given.auth.jwt_secret, "e".repeat(40));
            assert!(!Path::new("other/jwt-secret").exists());
            Ok(())
        });
    }

    #[test]
    fn secret_rules() {
        Jail::expect_with(|jail| {
            jail.create_file("secret", &format!("{}\n", "s".repeat(40)))?;
            jail.set_env("VIDAUD_AUTH__JWT_SECRET_FILE", "secret");
            let s = load(Path::new("config.toml")).map_err(|e| e.to_string())?;
            assert_eq!(jwt_secret(&s, false).map_err(|e| e.to_string())?.len(), 40);
            Ok(())
        });
        let mut s = Settings::default();
        let err = jwt_secret(&s, false).unwrap_err().to_string();
        assert!(err.contains("VIDAUD_AUTH__JWT_SECRET"), "{err}");
        s.auth.jwt_secret = "short".into();
        assert!(
            jwt_secret(&s, false)
                .unwrap_err()
                .to_string()
                .contains("only 5 bytes")
        );
        assert_eq!(jwt_secret(&s, true).unwrap().len(), 32);
    }
}
