//! Composing and sending the e-mail for a finished job (lettre over SMTP).

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tracing::warn;

use crate::job::{JobState, Mp3Message};
use crate::settings::NotifierSettings;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("sender address `{0}` is not valid")]
    Sender(String),
}

impl MailError {
    /// A 5xx answer: the server will refuse this mail every time.
    pub fn is_permanent(&self) -> bool {
        match self {
            MailError::Smtp(e) => e.is_permanent(),
            MailError::Sender(_) => true,
        }
    }
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
    public_url: String,
}

impl Mailer {
    pub fn new(settings: &NotifierSettings, public_url: &str) -> Result<Self, MailError> {
        let from = settings
            .from
            .parse()
            .map_err(|_| MailError::Sender(settings.from.clone()))?;
        // Plain SMTP to a relay on the local network or loopback; the relay
        // does the TLS to the outside world.
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.smtp_host)
                .port(settings.smtp_port);
        if !settings.smtp_username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.smtp_username.clone(),
                settings.smtp_password.clone(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends the mail for `message`. An owner that is not an e-mail address
    /// cannot be mailed, ever: that is logged and counts as done.
    pub async fn send(&self, message: &Mp3Message) -> Result<(), MailError> {
        let Ok(to) = message.username.parse::<lettre::message::Mailbox>() else {
            warn!(job_id = %message.job_id, "job owner is not an e-mail address; no mail sent");
            return Ok(());
        };
        let (subject, body) = compose(message, &self.public_url);
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(message_id(message, &self.from)))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        match email {
            Ok(email) => {
                self.transport.send(email).await?;
                Ok(())
            }
            Err(e) => {
                warn!(job_id = %message.job_id, "cannot build the e-mail: {e}");
                Ok(())
            }
        }
    }
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
pub fn compose(message: &Mp3Message, public_url: &str) -> (String, String) {
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
                 Download: {public_url}/download?fid={mp3}\n\
                 Job:      {job_url}\n\n\
                 Both links need your login token (Authorization: Bearer).\n",
                mp3 = message.mp3_fid
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

    fn message(state: JobState) -> Mp3Message {
        Mp3Message {
            job_id: "j1".into(),
            video_fid: "v1".into(),
            mp3_fid: "m1".into(),
            username: "u@example.com".into(),
            filename: "evil\r\nBcc: x@y.mp4".into(),
            state,
            error: Some("the file has no audio track".into()),
        }
    }

    #[test]
    fn done_mail_has_the_download_link_and_a_clean_subject() {
        let (subject, body) = compose(&message(JobState::Done), "http://h:8080");
        assert!(body.contains("http://h:8080/download?fid=m1"));
        assert!(!subject.contains('\r') && !subject.contains('\n'));
    }

    #[test]
    fn message_id_is_stable_per_job_outcome() {
        let from: lettre::message::Mailbox = "vidaud <v@example.org>".parse().unwrap();
        let done = message(JobState::Done);
        assert_eq!(message_id(&done, &from), "<j1.done@example.org>");
        assert_eq!(message_id(&done, &from), message_id(&done.clone(), &from));
        assert_ne!(
            message_id(&done, &from),
            message_id(&message(JobState::Failed), &from)
        );
    }

    #[test]
    fn failed_mail_gives_the_reason() {
        let (subject, body) = compose(&message(JobState::Failed), "http://h");
        assert!(subject.contains("failed"));
        assert!(body.contains("no audio track"));
    }
}
