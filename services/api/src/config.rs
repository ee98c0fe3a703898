//! The API's settings, from the environment with defaults.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use jt_runtime::client::TrustedProxies;
use jt_runtime::config::{ConfigError, Env, optional, or_default};

/// A rate limit: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    /// Attempts refilled per minute.
    pub per_minute: NonZeroU32,
    /// Attempts allowed at once.
    pub burst: NonZeroU32,
}

/// The API's settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The platform's public base URL, for webhook URLs and e-mailed links (`JT_PUBLIC_URL`,
    /// default `http://127.0.0.1:8080`). TradingView calls ports 80 and 443 only.
    pub public_url: String,
    /// How long a login session lasts (`JT_SESSION_HOURS`, default 168: a week).
    pub session_ttl: Duration,
    /// Whether cookies carry `Secure` (`JT_COOKIE_SECURE`; default: when `public_url` is
    /// https).
    pub secure_cookies: bool,
    /// Folder the file mailer writes `.eml` files into (`JT_MAIL_DIR`); unset: mail is not
    /// sent (logged without its content).
    pub mail_dir: Option<PathBuf>,
    /// The SMTP server mail is sent through (`JT_SMTP_URL`, `smtps://user:password@host` or
    /// `smtp://…` with STARTTLS; see `jt-mail`); it wins over `JT_MAIL_DIR`. The URL holds a
    /// password: it is never logged.
    pub smtp_url: Option<jt_store::Secret>,
    /// The sender of e-mails (`JT_MAIL_FROM`).
    pub mail_from: String,
    /// Login attempts per e-mail address.
    pub login_per_address: LoginLimit,
    /// Login attempts per source address.
    pub login_per_source: LoginLimit,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Proxies whose `X-Forwarded-For` is believed for the source address of login limits
    /// (`JT_TRUSTED_PROXIES`, as the ingest's); unset: the TCP peer. Behind an ingress this must
    /// name it, or every login shares the ingress's address and its limit.
    pub trusted_proxies: TrustedProxies,
    /// The plan of users without a current subscription (`JT_DEFAULT_PLAN`, a plan code);
    /// unset: such users are not limited (a self-hosted install without plans).
    pub default_plan: Option<String>,
    /// Whop: the webhook signing secret (`JT_WHOP_WEBHOOK_SECRET`, `whsec_…` as Whop shows
    /// it) and which Whop product is which plan (`JT_WHOP_PRODUCTS`,
    /// `prod_abc=pro,prod_def=basic`); unset: `POST /webhooks/whop` answers 404.
    pub whop: Option<crate::whop::WhopConfig>,
    /// Live event streams (`GET /api/v1/events`) one user may hold open on one replica
    /// (`JT_API_EVENT_STREAMS`, default 4): a tab each; one more is refused with 429.
    pub event_streams_per_user: usize,
    /// Whether notification targets may name private addresses
    /// (`JT_NOTIFY_ALLOW_PRIVATE_TARGETS`, as the notifier's; default false, on in `jt dev`):
    /// off, a webhook URL whose host is a private IP literal or `localhost` is refused.
    pub allow_private_notify_targets: bool,
}

#[allow(clippy::unwrap_used)] // non-zero literals
fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
            mail_dir: None,
            smtp_url: None,
            mail_from: "Just Trades <no-reply@localhost>".into(),
            login_per_address: LoginLimit {
                per_minute: nz(5),
                burst: nz(5),
            },
            login_per_source: LoginLimit {
                per_minute: nz(30),
                burst: nz(20),
            },
            max_body_bytes: 256 * 1024,
            trusted_proxies: TrustedProxies::default(),
            default_plan: None,
            whop: None,
            event_streams_per_user: 4,
            allow_private_notify_targets: false,
        }
    }
}

impl ApiConfig {
    /// Reads the settings from the environment, with defaults.
    ///
    /// # Errors
    /// A variable that is set but malformed, named in the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let public_url: String = or_default(env, "JT_PUBLIC_URL", d.public_url.clone())?;
        let public_url = public_url.trim_end_matches('/').to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "JT_PUBLIC_URL".into(),
                value: public_url,
                reason: "must start with http:// or https://".into(),
            });
        }
        let secure_default = public_url.starts_with("https://");
        Ok(Self {
            secure_cookies: or_default(env, "JT_COOKIE_SECURE", secure_default)?,
            public_url,
            session_ttl: Duration::from_secs(
                or_default::<u64>(env, "JT_SESSION_HOURS", 168)?.max(1) * 3600,
            ),
            mail_dir: optional::<PathBuf>(env, "JT_MAIL_DIR")?,
            smtp_url: optional::<String>(env, "JT_SMTP_URL")?
                .filter(|u| !u.trim().is_empty())
                .map(jt_store::Secret::new),
            mail_from: or_default(env, "JT_MAIL_FROM", d.mail_from.clone())?,
            trusted_proxies: optional(env, "JT_TRUSTED_PROXIES")?.unwrap_or_default(),
            default_plan: optional::<String>(env, "JT_DEFAULT_PLAN")?
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()),
            whop: crate::whop::WhopConfig::from_env(env)?,
            event_streams_per_user: or_default::<usize>(env, "JT_API_EVENT_STREAMS", 4)?.max(1),
            allow_private_notify_targets: or_default(
                env,
                jt_notify::target::ALLOW_PRIVATE_ENV,
                false,
            )?,
            ..d
        })
    }

    /// The webhook URL of a recorder's token.
    #[must_use]
    pub fn webhook_url(&self, token: &str) -> String {
        format!("{}/webhook/{token}", self.public_url)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn https_public_url_makes_cookies_secure_and_bad_urls_are_refused() {
        let c = ApiConfig::from_env(&env(&[("JT_PUBLIC_URL", "https://jt.example.com/")])).unwrap();
        assert!(c.secure_cookies);
        assert_eq!(c.webhook_url("abc"), "https://jt.example.com/webhook/abc");
        let c = ApiConfig::from_env(&env(&[])).unwrap();
        assert!(!c.secure_cookies);
        let e = ApiConfig::from_env(&env(&[("JT_PUBLIC_URL", "jt.example.com")])).unwrap_err();
        assert!(e.to_string().contains("JT_PUBLIC_URL"), "{e}");
        let c = ApiConfig::from_env(&env(&[(
            "JT_SMTP_URL",
            "smtps://ops:hunter2@smtp.example.com",
        )]))
        .unwrap();
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "the SMTP password never shows"
        );
        assert!(crate::mailer::from_config(&c).is_ok());
        let bad = ApiConfig::from_env(&env(&[("JT_SMTP_URL", "mail.example.com")])).unwrap();
        let e = crate::mailer::from_config(&bad).unwrap_err();
        assert!(e.to_string().contains("JT_SMTP_URL"), "{e}");
        let e = ApiConfig::from_env(&env(&[("JT_SESSION_HOURS", "soon")])).unwrap_err();
        assert!(e.to_string().contains("JT_SESSION_HOURS"), "{e}");
    }
}
