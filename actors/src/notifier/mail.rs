//! Composing and sending the e-mail for a finished job: over SMTP (lettre)
//! when a server is configured, else into a local Maildir, so a node with
//! no mail server still keeps every notification (and never retries
//! against a server that is not there).

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tracing::warn;

use crate::auth::LinkKeys;
use crate::domain::{JobState, Mp3Message};
use crate::settings::NotifierSettings;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP")]
    Smtp(#[from] lettre::transport::smtp::Error),
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
    /// A 5xx answer: the server will refuse this mail every time.
    pub fn is_permanent(&self) -> bool {
        match self {
            MailError::Smtp(e) => e.is_permanent(),
            MailError::Sender(_) => true,
            MailError::Maildir { .. } => false,
        }
    }
}

/// Where mails go.
#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
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
    /// missing).
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
            // Plain SMTP to a relay on the local network or loopback; the
            // relay does the TLS to the outside world.
            let mut builder =
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.smtp_host)
                    .port(settings.smtp_port);
            if !settings.smtp_username.is_empty() {
                builder = builder.credentials(Credentials::new(
                    settings.smtp_username.clone(),
                    settings.smtp_password.clone(),
                ));
            }
            Transport::Smtp(builder.build())
        };
        Ok(Self {
            transport,
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
            links,
        })
    }

    /// Sends the mail for `message`. An owner that is not an e-mail address
    /// cannot be mailed, ever: that is logged and counts as done.
    pub async fn send(&self, message: &Mp3Message) -> Result<(), MailError> {
        let Ok(to) = message.username.parse::<lettre::message::Mailbox>() else {
            warn!(job_id = %message.job_id, "job owner is not an e-mail address; no mail sent");
            return Ok(());
        };
        let link = self.links.url(
            &self.public_url,
            &message.mp3_fid.to_hex(),
            jsonwebtoken::get_current_timestamp() + self.links.ttl_secs,
        );
        let (subject, body) = compose(message, &self.public_url, &link);
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(message_id(message, &self.from)))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        match email {
            Ok(email) => match &self.transport {
                Transport::Smtp(smtp) => {
                    smtp.send(email).await?;
                    Ok(())
                }
                Transport::Maildir(dir) => {
                    let name = format!("{}.{}.vidaud", message.job_id, message.state.as_str());
                    deliver_to_maildir(dir.clone(), name, email.formatted()).await
                }
            },
            Err(e) => {
                warn!(job_id = %message.job_id, "cannot build the e-mail: {e}");
                Ok(())
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

/// Subject and text of the mail. The file name is the user's: control
/// characters are removed so it cannot inject headers.
pub fn compose(message: &Mp3Message, public_url: &str, download: &str) -> (String, String) {
    let name: String = message
        .filename
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    let job_url = format!("{public_url}/jobs/{}", message.job_id);
    match message.state {
        JobState::Done => (
            format!("Your MP3 of \"{name}\" is ready"),
            format!(
                "Your upload \"{name}\" has been converted.\n\n\
                 Download (no login needed; the link works for a limited time):\n\
                 {download}\n\n\
                 Job (with your login): {job_url}\n"
            ),
        ),
        _ => (
            format!("Conversion of \"{name}\" failed"),
            format!(
                "Your upload \"{name}\" could not be converted.\n\nReason: {}\nJob:    {job_url}\n",
                message.error.as_deref().unwrap_or("unknown")
            ),
        ),
    }
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
            filename: "evil\r\nBcc: x@y.mp4".into(),
            state,
            error: Some("the file has no audio track".into()),
        }
    }

    #[test]
    fn done_mail_has_the_download_link_and_a_clean_subject() {
        let link = format!("http://h:8080/download?fid={MP3}&exp=1&kid=j0&sig=x");
        let (subject, body) = compose(&message(JobState::Done), "http://h:8080", &link);
        assert!(body.contains(&link));
        assert!(!subject.contains('\r') && !subject.contains('\n'));
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

    #[test]
    fn failed_mail_gives_the_reason() {
        let (subject, body) = compose(&message(JobState::Failed), "http://h", "");
        assert!(subject.contains("failed"));
        assert!(body.contains("no audio track"));
    }
}
