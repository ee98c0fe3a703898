//! Outgoing e-mail: one [`Mailer`] trait and its implementations — the [`FileMailer`] (each
//! mail an `.eml` file in a folder: what `jt dev` and the tests read), the [`SmtpMailer`]
//! (`JT_SMTP_URL`: a relay or a provider such as SES or Postmark, over STARTTLS or implicit
//! TLS, with AUTH PLAIN) and the [`NoMailer`] (nothing configured: dropped, logged without its
//! body). Password resets, account activation and notifications all send through it.
//!
//! Mails are plain text, UTF-8, with the headers a mail needs (`From`, `To`, `Subject`, `Date`,
//! `Message-ID`); header values never carry a line break (no header injection).

mod smtp;

use std::path::PathBuf;

use async_trait::async_trait;

pub use smtp::{SmtpConfig, SmtpConfigError, SmtpMailer, SmtpSecurity};

/// One e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// A mail that could not be handed over.
#[derive(Debug, thiserror::Error)]
#[error("mail not sent: {0}")]
pub struct MailError(pub String);

impl MailError {
    /// Whether sending again later may succeed (a network error, a 4xx reply) rather than
    /// never (a 5xx reply: a refused address, refused credentials).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        !self.0.contains("permanent")
    }
}

/// Sends e-mail.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Hands one mail over for delivery.
    ///
    /// # Errors
    /// [`MailError`] when it could not be handed over.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Header values may not hold line breaks (header injection).
pub(crate) fn header(v: &str) -> String {
    v.replace(['\r', '\n'], " ")
}

/// The address inside `Name <addr>`, or the whole text.
pub(crate) fn address(v: &str) -> &str {
    match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].trim(),
        _ => v.trim(),
    }
}

/// The mail as RFC 5322 text with CRLF line ends.
#[must_use]
pub fn render(from: &str, mail: &Mail) -> String {
    let now = chrono::Utc::now();
    let domain = address(from).rsplit('@').next().unwrap_or("localhost");
    format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}@{}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
        header(from),
        header(&mail.to),
        header(&mail.subject),
        now.to_rfc2822(),
        uuid::Uuid::new_v4().simple(),
        header(domain),
        mail.body.replace("\r\n", "\n").replace('\n', "\r\n"),
    )
}

/// Writes each mail as an `.eml` file into a folder.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    from: String,
}

impl FileMailer {
    /// A mailer writing into `dir` (created when missing) with sender `from`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>, from: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            from: from.into(),
        }
    }

    /// The folder mails are written into.
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let name = format!(
            "{}-{}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| MailError(format!("creating {}: {e}", self.dir.display())))?;
        let path = self.dir.join(name);
        tokio::fs::write(&path, render(&self.from, mail))
            .await
            .map_err(|e| MailError(format!("writing {}: {e}", path.display())))
    }
}

/// No mailer configured: the mail is dropped, and its recipient and subject (never its body,
/// which can hold a token) are logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tracing::warn!(to = %mail.to, subject = %mail.subject, "no mailer configured (JT_SMTP_URL or JT_MAIL_DIR): mail dropped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn the_file_mailer_writes_one_eml_per_mail_without_header_injection() {
        let dir = std::env::temp_dir().join(format!("jt-mail-{}", uuid::Uuid::new_v4()));
        let m = FileMailer::new(&dir, "jt <no-reply@jt.test>");
        m.send(&Mail {
            to: "a@b.test\r\nBcc: evil@x.test".into(),
            subject: "Reset".into(),
            body: "line 1\nline 2".into(),
        })
        .await
        .unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(
            text.contains("To: a@b.test  Bcc: evil@x.test\r\n"),
            "{text}"
        );
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(text.ends_with("line 1\r\nline 2\r\n"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_address_of_a_named_sender_is_inside_the_brackets() {
        assert_eq!(
            address("Just Trades <no-reply@jt.test>"),
            "no-reply@jt.test"
        );
        assert_eq!(address("ops@jt.test"), "ops@jt.test");
    }
}
