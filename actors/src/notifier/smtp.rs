//! The SMTP client: one connection per mail, secured as configured
//! (`notifier.smtp_tls`), every step under its own deadline, and every
//! failure naming the step it happened in.
//!
//! lettre's ready-made transport hides which step failed and logs in over
//! a plain connection when opportunistic STARTTLS was not offered; driving
//! its connection a step at a time lets the mailer refuse to send a
//! password in clear and tell the operator exactly what went wrong.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::Error as LettreError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;

use crate::settings::{NotifierSettings, SmtpTls};

/// A step of one SMTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connect,
    /// The TLS handshake of an implicit-TLS connection.
    Handshake,
    StartTls,
    Auth,
    Send,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "connecting",
            Step::Handshake => "the TLS handshake",
            Step::StartTls => "STARTTLS",
            Step::Auth => "logging in (AUTH)",
            Step::Send => "sending the mail",
        })
    }
}

/// Why one mail did not go out.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("{step} with the SMTP server {server} failed")]
    Failed {
        step: Step,
        server: String,
        #[source]
        source: LettreError,
    },
    #[error("{step} with the SMTP server {server} took longer than {secs} s")]
    Timeout {
        step: Step,
        server: String,
        secs: u64,
    },
    #[error(
        "the SMTP server {server} does not offer STARTTLS, which notifier.smtp_tls = \"starttls\" \
         requires"
    )]
    NoStartTls { server: String },
    #[error(
        "not sending the SMTP password to {server} over an unencrypted connection (the server \
         offers no STARTTLS); set notifier.smtp_allow_plain_auth = true to allow it"
    )]
    PlainAuth { server: String },
}

impl SmtpError {
    /// The server refused this mail for good (a 5xx to MAIL, RCPT or DATA).
    /// A refused login or a TLS failure is the operator's to fix, and the
    /// mail waits for it.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SmtpError::Failed { step: Step::Send, source, .. } if source.is_permanent())
    }
}

/// A mail setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("reading notifier.smtp_ca_file {path}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("notifier.smtp_ca_file {path} holds no usable PEM certificate")]
    CaCertificates {
        path: String,
        #[source]
        source: LettreError,
    },
    #[error("setting up TLS for {host}")]
    Tls {
        host: String,
        #[source]
        source: LettreError,
    },
    #[error(
        "notifier.smtp_username is set, but notifier.smtp_tls = \"none\" would send the password \
         in clear: use \"starttls\" or \"tls\", or set notifier.smtp_allow_plain_auth = true"
    )]
    PlainAuth,
}

/// Sends mails to one SMTP server.
#[derive(Clone)]
pub struct SmtpClient {
    host: String,
    port: u16,
    mode: SmtpTls,
    /// How the server's certificate is checked; `None` for `SmtpTls::None`.
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    allow_plain_auth: bool,
    timeout: Duration,
    hello: ClientId,
}

impl SmtpClient {
    pub fn new(settings: &NotifierSettings) -> Result<Self, SmtpConfigError> {
        let host = settings.smtp_host.trim().to_owned();
        let credentials = (!settings.smtp_username.is_empty()).then(|| {
            Credentials::new(
                settings.smtp_username.clone(),
                settings.smtp_password.clone(),
            )
        });
        if credentials.is_some()
            && settings.smtp_tls == SmtpTls::None
            && !settings.smtp_allow_plain_auth
        {
            return Err(SmtpConfigError::PlainAuth);
        }
        let tls = match settings.smtp_tls {
            SmtpTls::None => None,
            _ => Some(tls_parameters(&host, &settings.smtp_ca_file)?),
        };
        Ok(Self {
            host,
            port: settings.smtp_port,
            mode: settings.smtp_tls,
            tls,
            credentials,
            allow_plain_auth: settings.smtp_allow_plain_auth,
            timeout: Duration::from_secs(settings.smtp_timeout_secs.max(1)),
            hello: ClientId::default(),
        })
    }

    /// `host:port`, as errors and logs name the server.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects, secures, logs in, sends `email`, and says goodbye.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), SmtpError> {
        let implicit = match self.mode {
            SmtpTls::Tls => self.tls.clone(),
            _ => None,
        };
        let connect = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        );
        let mut connection = self.step(Step::Connect, connect).await?;
        let sent = self.exchange(&mut connection, envelope, email).await;
        match &sent {
            // The server has the mail: a failed goodbye changes nothing.
            Ok(()) => {
                let _ = tokio::time::timeout(self.timeout, connection.quit()).await;
            }
            // A failed upgrade leaves lettre no stream to say QUIT on.
            Err(SmtpError::Failed { step, .. } | SmtpError::Timeout { step, .. })
                if *step == Step::StartTls => {}
            Err(_) => {
                let _ = tokio::time::timeout(self.timeout, connection.abort()).await;
            }
        }
        sent
    }

    async fn exchange(
        &self,
        connection: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<(), SmtpError> {
        if let (SmtpTls::Starttls | SmtpTls::Opportunistic, Some(tls)) = (self.mode, &self.tls) {
            if connection.can_starttls() {
                let upgrade = connection.starttls(tls.clone(), &self.hello);
                self.step(Step::StartTls, upgrade).await?;
            } else if self.mode == SmtpTls::Starttls {
                return Err(SmtpError::NoStartTls {
                    server: self.server(),
                });
            }
        }
        if let Some(credentials) = &self.credentials {
            if !connection.is_encrypted() && !self.allow_plain_auth {
                return Err(SmtpError::PlainAuth {
                    server: self.server(),
                });
            }
            let login = connection.auth(&[Mechanism::Plain, Mechanism::Login], credentials);
            self.step(Step::Auth, login).await?;
        }
        self.step(Step::Send, connection.send(envelope, email))
            .await
            .map(|_| ())
    }

    /// Runs one step under the deadline, naming it in its error.
    async fn step<T>(
        &self,
        step: Step,
        work: impl Future<Output = Result<T, LettreError>>,
    ) -> Result<T, SmtpError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(SmtpError::Failed {
                step: match step {
                    Step::Connect if source.is_tls() => Step::Handshake,
                    other => other,
                },
                server: self.server(),
                source,
            }),
            Err(_) => Err(SmtpError::Timeout {
                step,
                server: self.server(),
                secs: self.timeout.as_secs(),
            }),
        }
    }
}

/// Certificate checking for `host`: against the CA file when one is set
/// (and only it), else against the system's roots.
fn tls_parameters(host: &str, ca_file: &str) -> Result<TlsParameters, SmtpConfigError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if !ca_file.is_empty() {
        let pem = std::fs::read(ca_file).map_err(|source| SmtpConfigError::CaFile {
            path: ca_file.to_owned(),
            source,
        })?;
        let certificate =
            Certificate::from_pem(&pem).map_err(|source| SmtpConfigError::CaCertificates {
                path: ca_file.to_owned(),
                source,
            })?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|source| SmtpConfigError::Tls {
            host: host.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tls: SmtpTls, username: &str, allow_plain: bool) -> NotifierSettings {
        NotifierSettings {
            smtp_host: "127.0.0.1".into(),
            smtp_tls: tls,
            smtp_username: username.into(),
            smtp_allow_plain_auth: allow_plain,
            ..NotifierSettings::default()
        }
    }

    #[test]
    fn a_password_in_clear_is_refused_unless_allowed() {
        assert!(matches!(
            SmtpClient::new(&settings(SmtpTls::None, "u", false)),
            Err(SmtpConfigError::PlainAuth)
        ));
        assert!(SmtpClient::new(&settings(SmtpTls::None, "u", true)).is_ok());
        assert!(SmtpClient::new(&settings(SmtpTls::None, "", false)).is_ok());
        assert!(SmtpClient::new(&settings(SmtpTls::Starttls, "u", false)).is_ok());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let mut s = settings(SmtpTls::Tls, "", false);
        s.smtp_ca_file = "/nonexistent/ca.pem".into();
        let error = SmtpClient::new(&s).err().expect("refused");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
