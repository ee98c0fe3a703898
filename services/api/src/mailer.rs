//! Outgoing e-mail behind a trait. This part ships the file mailer (`JT_MAIL_DIR`: each mail
//! an `.eml` file, what `jt dev` uses and what tests read); SMTP (`JT_SMTP_URL`) is a later
//! implementation of the same trait.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::ApiConfig;

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

/// Sends e-mail.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Hands one mail over for delivery.
    ///
    /// # Errors
    /// [`MailError`] when it could not be handed over.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Writes each mail as an `.eml` file (RFC 5322 headers, plain text) into a folder.
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

/// Header values may not hold line breaks (header injection).
fn header(v: &str) -> String {
    v.replace(['\r', '\n'], " ")
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let now = chrono::Utc::now();
        let name = format!(
            "{}-{}.eml",
            now.format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        let text = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
            header(&self.from),
            header(&mail.to),
            header(&mail.subject),
            now.to_rfc2822(),
            mail.body.replace('\n', "\r\n"),
        );
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| MailError(format!("creating {}: {e}", self.dir.display())))?;
        let path = self.dir.join(name);
        tokio::fs::write(&path, text)
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
        tracing::warn!(to = %mail.to, subject = %mail.subject, "no mailer configured (JT_MAIL_DIR): mail dropped");
        Ok(())
    }
}

/// The mailer the configuration asks for.
///
/// # Errors
/// None yet; SMTP settings will be checked here.
pub fn from_config(config: &ApiConfig) -> anyhow::Result<Arc<dyn Mailer>> {
    Ok(match &config.mail_dir {
        Some(dir) => Arc::new(FileMailer::new(dir.clone(), config.mail_from.clone())),
        None => Arc::new(NoMailer),
    })
}

#[cfg(test)]
mod tests {
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
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(text.ends_with("line 1\r\nline 2\r\n"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
