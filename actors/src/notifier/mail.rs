//! Sending the e-mail for a finished job: over SMTP (see `smtp.rs`) when a
//! server is configured, else into a local Maildir, so a node with no mail
//! server still keeps every notification (and never retries against a
//! server that is not there).

use std::path::PathBuf;
use std::sync::Arc;

use lettre::Message;
use lettre::message::MultiPart;
use tracing::warn;

use super::compose::{Notice, compose, escape};
use super::smtp::{SmtpClient, SmtpConfigError, SmtpError};
use crate::auth::LinkKeys;
use crate::domain::{JobRecord, JobState, Mp3Message, Timestamp};
use crate::settings::NotifierSettings;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error("the SMTP settings")]
    Config(#[from] SmtpConfigError),
    #[error("sender address `{0}` is not valid")]
    Sender(String),
    #[error("writing the mail into the Maildir {dir}")]
    Maildir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl MailError {
    /// The server will refuse this mail every time (a 5xx to it).
    pub fn is_permanent(&self) -> bool {
        match self {
            MailError::Smtp(e) => e.is_permanent(),
            MailError::Sender(_) | MailError::Config(_) => true,
            MailError::Maildir { .. } => false,
        }
    }
}

/// Where mails go.
#[derive(Clone)]
enum Transport {
    Smtp(Arc<SmtpClient>),
    Maildir(PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: lettre::message::Mailbox,
    public_url: String,
    /// Signs the download link in a "ready" mail.
    links: Arc<LinkKeys>,
}

impl Mailer {
    /// SMTP to `smtp_host`; with no host, the Maildir `maildir` (made if
    /// missing). Settings that cannot work are refused here, at start-up.
    pub fn new(
        settings: &NotifierSettings,
        public_url: &str,
        links: Arc<LinkKeys>,
        maildir: PathBuf,
    ) -> Result<Self, MailError> {
        let from = settings
            .from
            .parse()
            .map_err(|_| MailError::Sender(settings.from.clone()))?;
        let transport = if settings.smtp_host.trim().is_empty() {
            for sub in ["tmp", "new", "cur"] {
                std::fs::create_dir_all(maildir.join(sub)).map_err(|source| {
                    MailError::Maildir {
                        dir: maildir.clone(),
                        source,
                    }
                })?;
            }
            tracing::info!(
                maildir = %maildir.display(),
                "no SMTP server configured (notifier.smtp_host is empty): \
                 mails are written to a local Maildir"
            );
            Transport::Maildir(maildir)
        } else {
            let client = SmtpClient::new(settings)?;
            tracing::info!(
                server = %client.server(),
                tls = ?settings.smtp_tls,
                login = !settings.smtp_username.is_empty(),
                "mails go to the SMTP server"
            );
            Transport::Smtp(Arc::new(client))
        };
        Ok(Self {
            transport,
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
            links,
        })
    }

    /// Sends the mail for `message` about `job`. An owner that is not an
    /// e-mail address cannot be mailed, ever: that is logged and counts as
    /// done.
    pub async fn send(&self, message: &Mp3Message, job: &JobRecord) -> Result<(), MailError> {
        let Ok(to) = message.username.parse::<lettre::message::Mailbox>() else {
            warn!(job_id = %message.job_id, "job owner is not an e-mail address; no mail sent");
            return Ok(());
        };
        let download = (message.state == JobState::Done).then(|| {
            let exp = jsonwebtoken::get_current_timestamp() + self.links.ttl_secs;
            let url = self
                .links
                .url(&self.public_url, &message.mp3_fid.to_hex(), exp);
            let millis = i64::try_from(exp.saturating_mul(1000)).unwrap_or(i64::MAX);
            (url, Timestamp::from_millis(millis))
        });
        let mail = compose(&Notice {
            message,
            output: &job.output,
            audio: job.audio,
            job_url: format!("{}/jobs/{}", self.public_url, message.job_id),
            download,
        });
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(message_id(message, &self.from)))
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html));
        let email = match email {
            Ok(email) => email,
            Err(e) => {
                warn!(job_id = %message.job_id, "cannot build the e-mail: {e}");
                return Ok(());
            }
        };
        let name = format!("{}.{}.vidaud", message.job_id, message.state.as_str());
        self.deliver(&email, name).await
    }

    /// Tells `address` that its account and everything in it are gone. An
    /// address that cannot be mailed is logged and counts as done.
    pub async fn send_account_deleted(&self, address: &str) -> Result<(), MailError> {
        let Ok(to) = address.parse::<lettre::message::Mailbox>() else {
            warn!("a deleted account's e-mail is not an address; no confirmation sent");
            return Ok(());
        };
        let text = format!(
            "Your vidaud account {address} was deleted, with its jobs, files, \
             uploads and webhooks.\n\nIf you did not ask for this, tell the \
             administrator of {}.\n",
            self.public_url
        );
        let html = format!(
            "<p>Your vidaud account <b>{}</b> was deleted, with its jobs, files, uploads \
             and webhooks.</p><p>If you did not ask for this, tell the administrator of \
             {}.</p>",
            escape(address),
            escape(&self.public_url)
        );
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Your vidaud account was deleted")
            .multipart(MultiPart::alternative_plain_html(text, html));
        let email = match email {
            Ok(email) => email,
            Err(e) => {
                warn!("cannot build the account-deletion e-mail: {e}");
                return Ok(());
            }
        };
        let name = format!("account-deleted.{}.vidaud", Timestamp::now().millis());
        self.deliver(&email, name).await
    }

    /// Hands `email` to the transport; `maildir_name` names it in a Maildir.
    async fn deliver(&self, email: &Message, maildir_name: String) -> Result<(), MailError> {
        match &self.transport {
            Transport::Smtp(smtp) => Ok(smtp.send(email.envelope(), &email.formatted()).await?),
            Transport::Maildir(dir) => {
                deliver_to_maildir(dir.clone(), maildir_name, email.formatted()).await
            }
        }
    }
}

/// Writes one message into a Maildir: `tmp/NAME`, fsynced, renamed to
/// `new/NAME`. The name is the job and its outcome, so a mail re-sent after
/// a crash replaces itself instead of arriving twice.
async fn deliver_to_maildir(dir: PathBuf, name: String, bytes: Vec<u8>) -> Result<(), MailError> {
    let written = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || -> std::io::Result<()> {
            use std::io::Write;
            let tmp = dir.join("tmp").join(&name);
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, dir.join("new").join(&name))?;
            std::fs::File::open(dir.join("new"))?.sync_all()
        }
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    written.map_err(|source| MailError::Maildir { dir, source })
}

/// The same for every send of one job's outcome. A notification re-sent
/// after a crash (between the SMTP server taking it and the `mailed` mark)
/// is thereby the same message, which mail stores and clients collapse.
pub fn message_id(message: &Mp3Message, from: &lettre::message::Mailbox) -> String {
    let domain = from.email.domain();
    format!("<{}.{}@{domain}>", message.job_id, message.state.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::{FileId, JobId};

    const JOB: &str = "656f0a0b0c0d0e0f10111213";
    const MP3: &str = "656f0a0b0c0d0e0f10111299";

    fn message(state: JobState) -> Mp3Message {
        Mp3Message {
            job_id: JobId::parse(JOB).unwrap(),
            video_fid: FileId::new(),
            mp3_fid: FileId::parse(MP3).unwrap(),
            username: "u@example.com".into(),
            user_id: None,
            filename: "evil\r\nBcc: x@y.mp4".into(),
            state,
            error: Some("the file has no audio track".into()),
        }
    }

    #[test]
    fn message_id_is_stable_per_job_outcome() {
        let from: lettre::message::Mailbox = "vidaud <v@example.org>".parse().unwrap();
        let done = message(JobState::Done);
        assert_eq!(
            message_id(&done, &from),
            format!("<{JOB}.done@example.org>")
        );
        assert_eq!(message_id(&done, &from), message_id(&done.clone(), &from));
        assert_ne!(
            message_id(&done, &from),
            message_id(&message(JobState::Failed), &from)
        );
    }
}
