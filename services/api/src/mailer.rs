//! Outgoing e-mail of the API (password resets, account activation): the `jt-mail` mailers,
//! chosen from the settings — SMTP when `JT_SMTP_URL` is set, else the file mailer when
//! `JT_MAIL_DIR` is, else none (mail dropped, logged without its body).

use std::sync::Arc;

pub use jt_mail::{FileMailer, Mail, MailError, Mailer, NoMailer, SmtpConfig, SmtpMailer};

use crate::config::ApiConfig;

/// The mailer the configuration asks for.
///
/// # Errors
/// A `JT_SMTP_URL` that cannot be used (named, without its password).
pub fn from_config(config: &ApiConfig) -> anyhow::Result<Arc<dyn Mailer>> {
    if let Some(url) = &config.smtp_url {
        let smtp = SmtpConfig::from_url(url.expose(), &config.mail_from)?;
        return Ok(Arc::new(SmtpMailer::new(smtp)));
    }
    Ok(match &config.mail_dir {
        Some(dir) => Arc::new(FileMailer::new(dir.clone(), config.mail_from.clone())),
        None => Arc::new(NoMailer),
    })
}
