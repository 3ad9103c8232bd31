//! The SMTP client (lettre over tokio and rustls): one connection per mail,
//! protected as `smtp_url` says ([`super::settings`]).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::settings::{self, Security};
use crate::config::Config;
use crate::store::records::MailRecord;

/// Longest one SMTP conversation may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a mail was not sent.
#[derive(Debug)]
pub struct SendError {
    /// The server refused it for good (or it cannot be built): retrying is pointless.
    pub permanent: bool,
    /// One line for the log.
    pub message: String,
}

impl SendError {
    fn permanent(message: String) -> SendError {
        SendError {
            permanent: true,
            message,
        }
    }
}

/// A configured mail server and sender address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The mailer `cfg` describes; `Ok(None)` when mail is off.
    pub fn from_config(cfg: &Config) -> Result<Option<Mailer>, String> {
        if cfg.smtp_url.is_empty() {
            return Ok(None);
        }
        let server = settings::parse_smtp_url(&cfg.smtp_url)?;
        let from: Mailbox = cfg
            .mail_from
            .parse()
            .map_err(|e| format!("mail_from is not a mail address: {e}"))?;
        let builder = match server.security {
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&server.host),
            Security::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&server.host)
            }
            Security::Plain => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &server.host,
            )),
        }
        .map_err(|e| format!("cannot set up TLS for the mail server: {e}"))?;
        let mut builder = builder.port(server.port).timeout(Some(SEND_TIMEOUT));
        if let Some(host) = public_host(&cfg.public_url) {
            builder = builder.hello_name(ClientId::Domain(host));
        }
        if let Some(user) = server.user {
            builder = builder.credentials(Credentials::new(user, cfg.smtp_password.clone()));
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
        }))
    }

    /// Sends one queued mail.
    pub async fn send(&self, mail: &MailRecord) -> Result<(), SendError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| SendError::permanent(format!("bad recipient address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| SendError {
                permanent: e.is_permanent(),
                message: e.to_string(),
            })
    }
}

/// The host of `public_url`, to greet the mail server with.
fn public_host(public_url: &str) -> Option<String> {
    let rest = public_url.split_once("://")?.1;
    let host = rest.split(['/', ':']).next()?;
    (!host.is_empty()).then(|| host.to_string())
}
