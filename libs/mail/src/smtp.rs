//! A small SMTP client (RFC 5321) for the platform's few mails: one connection per mail,
//! `EHLO`, TLS, `AUTH PLAIN`, `MAIL FROM`, `RCPT TO`, `DATA`, `QUIT`.
//!
//! `JT_SMTP_URL` says where and how:
//! - `smtps://user:password@smtp.example.com` — implicit TLS (default port 465);
//! - `smtp://user:password@smtp.example.com` — STARTTLS (default port 587). A server that does
//!   not offer STARTTLS is refused — credentials and password-reset links never cross the
//!   network in clear — except on a loopback host (a local relay) or with `?insecure` named in
//!   the URL by the operator;
//! - user and password are percent-decoded (a password may hold `@` or `:` as `%40`, `%3A`).
//!
//! Certificates are checked against the Mozilla roots (webpki-roots) and the host name. A 4xx
//! reply is a transient failure (send again later), a 5xx permanent; either names the server's
//! words. The whole exchange is bounded by a timeout, so a silent server never hangs a caller.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{Mail, MailError, Mailer, address, render};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (`smtps://`).
    ImplicitTls,
    /// Plain, upgraded with STARTTLS (`smtp://`); refused when not offered unless plain is
    /// allowed.
    StartTls {
        /// Carry on without TLS when the server does not offer it (loopback or `?insecure`).
        allow_plain: bool,
    },
}

/// Where and how to send.
#[derive(Clone)]
pub struct SmtpConfig {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS mode.
    pub security: SmtpSecurity,
    /// Login, when the server needs one.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// The sender (`Name <address>` or an address).
    pub from: String,
    /// Bound on one whole mail's exchange.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// A `JT_SMTP_URL` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JT_SMTP_URL: {0}")]
pub struct SmtpConfigError(pub String);

fn percent_decode(s: &str) -> Result<String, SmtpConfigError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| SmtpConfigError("a bad %-escape in the user or password".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SmtpConfigError("user or password is not UTF-8".into()))
}

impl SmtpConfig {
    /// Reads `smtp[s]://[user[:password]@]host[:port][?insecure]`.
    ///
    /// # Errors
    /// [`SmtpConfigError`] naming what is wrong (never echoing the password).
    pub fn from_url(url: &str, from: &str) -> Result<Self, SmtpConfigError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| SmtpConfigError("must be smtp://… or smtps://…".into()))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let insecure = match query {
            None | Some("") => false,
            Some("insecure") => true,
            Some(q) => {
                return Err(SmtpConfigError(format!(
                    "unknown option `{q}` (only `insecure`)"
                )));
            }
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (Some(percent_decode(n)?), Some(percent_decode(p)?)),
                None => (Some(percent_decode(u)?), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                Some(
                    p.parse::<u16>()
                        .map_err(|_| SmtpConfigError(format!("port `{p}` is not a number")))?,
                ),
            ),
            _ => (hostport.to_string(), None),
        };
        if host.is_empty() {
            return Err(SmtpConfigError("no host".into()));
        }
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let (security, default_port) = match scheme {
            "smtps" => (SmtpSecurity::ImplicitTls, 465),
            "smtp" => (
                SmtpSecurity::StartTls {
                    allow_plain: loopback || insecure,
                },
                587,
            ),
            other => {
                return Err(SmtpConfigError(format!(
                    "scheme `{other}`: must be smtp or smtps"
                )));
            }
        };
        if address(from).is_empty() || !address(from).contains('@') {
            return Err(SmtpConfigError(format!(
                "the sender `{from}` (JT_MAIL_FROM) has no address"
            )));
        }
        Ok(Self {
            host,
            port: port.unwrap_or(default_port),
            security,
            username,
            password,
            from: from.to_string(),
            timeout: Duration::from_secs(60),
        })
    }
}

/// Sends each mail over its own SMTP connection.
#[derive(Clone)]
pub struct SmtpMailer {
    config: Arc<SmtpConfig>,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `config`, checking certificates against the Mozilla roots.
    #[must_use]
    pub fn new(config: SmtpConfig) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            config: Arc::new(config),
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        }
    }

    async fn deliver(&self, mail: &Mail) -> Result<(), MailError> {
        let c = &self.config;
        let tcp = TcpStream::connect((c.host.as_str(), c.port))
            .await
            .map_err(|e| MailError(format!("connecting to {}:{}: {e}", c.host, c.port)))?;
        match c.security {
            SmtpSecurity::ImplicitTls => {
                let tls = self.tls_over(tcp).await?;
                let mut s = BufReader::new(tls);
                expect(&mut s, 220, "greeting").await?;
                ehlo(&mut s).await?;
                transact(&mut s, c, mail).await
            }
            SmtpSecurity::StartTls { allow_plain } => {
                let mut s = BufReader::new(tcp);
                expect(&mut s, 220, "greeting").await?;
                let caps = ehlo(&mut s).await?;
                if caps.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                    command(&mut s, "STARTTLS").await?;
                    expect(&mut s, 220, "STARTTLS").await?;
                    let tls = self.tls_over(s.into_inner()).await?;
                    let mut s = BufReader::new(tls);
                    ehlo(&mut s).await?;
                    transact(&mut s, c, mail).await
                } else if allow_plain {
                    transact(&mut s, c, mail).await
                } else {
                    Err(MailError(format!(
                        "permanent: {} does not offer STARTTLS; use smtps:// or a server with \
                         TLS (plain SMTP only to a loopback relay or with ?insecure)",
                        c.host
                    )))
                }
            }
        }
    }

    async fn tls_over(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, MailError> {
        let name = rustls::pki_types::ServerName::try_from(self.config.host.clone())
            .map_err(|e| MailError(format!("permanent: TLS name {}: {e}", self.config.host)))?;
        self.tls
            .connect(name, tcp)
            .await
            .map_err(|e| MailError(format!("TLS with {}: {e}", self.config.host)))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tokio::time::timeout(self.config.timeout, self.deliver(mail))
            .await
            .map_err(|_| {
                MailError(format!(
                    "{}:{} did not finish within {:?}",
                    self.config.host, self.config.port, self.config.timeout
                ))
            })?
    }
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    line: &str,
) -> Result<(), MailError> {
    let w = s.get_mut();
    w.write_all(line.as_bytes())
        .await
        .and(w.write_all(b"\r\n").await)
        .and(w.flush().await)
        .map_err(|e| MailError(format!("writing to the server: {e}")))
}

/// Reads one (possibly multi-line) reply: its code and the text of each line.
async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
) -> Result<(u16, Vec<String>), MailError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = s
            .read_line(&mut line)
            .await
            .map_err(|e| MailError(format!("reading from the server: {e}")))?;
        if n == 0 {
            return Err(MailError("the server closed the connection".into()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| MailError(format!("not an SMTP reply: {line:?}")))?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").to_string());
        if lines.len() > 100 {
            return Err(MailError("the server's reply does not end".into()));
        }
        if !more {
            return Ok((code, lines));
        }
    }
}

async fn expect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    want: u16,
    step: &str,
) -> Result<Vec<String>, MailError> {
    let (code, lines) = reply(s).await?;
    if code == want || (want == 250 && code == 251) {
        return Ok(lines);
    }
    let kind = if (500..600).contains(&code) {
        "permanent"
    } else {
        "transient"
    };
    Err(MailError(format!(
        "{kind}: {step} answered {code} {}",
        lines.join(" / ")
    )))
}

async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
) -> Result<Vec<String>, MailError> {
    command(s, "EHLO jt.localdomain").await?;
    let lines = expect(s, 250, "EHLO").await?;
    // The first line greets; the others are capabilities (`STARTTLS`, `AUTH PLAIN LOGIN`…).
    Ok(lines.into_iter().skip(1).collect())
}

async fn transact<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    c: &SmtpConfig,
    mail: &Mail,
) -> Result<(), MailError> {
    if let Some(user) = &c.username {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{}", c.password.as_deref().unwrap_or("")));
        command(s, &format!("AUTH PLAIN {token}")).await?;
        expect(s, 235, "AUTH").await?;
    }
    let to = address(&mail.to);
    if to.is_empty() || to.contains(['\r', '\n', '<', '>']) {
        return Err(MailError(format!("permanent: bad recipient {:?}", mail.to)));
    }
    command(s, &format!("MAIL FROM:<{}>", address(&c.from))).await?;
    expect(s, 250, "MAIL FROM").await?;
    command(s, &format!("RCPT TO:<{to}>")).await?;
    expect(s, 250, "RCPT TO").await?;
    command(s, "DATA").await?;
    expect(s, 354, "DATA").await?;
    let text = render(&c.from, mail);
    let mut body = String::with_capacity(text.len() + 8);
    for line in text.split_inclusive("\r\n") {
        // Dot-stuffing: a line starting with `.` is sent with one more (RFC 5321 §4.5.2).
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
    }
    body.push_str(".\r\n");
    let w = s.get_mut();
    w.write_all(body.as_bytes())
        .await
        .and(w.flush().await)
        .map_err(|e| MailError(format!("writing the message: {e}")))?;
    expect(s, 250, "end of DATA").await?;
    // The mail is accepted; a failing QUIT (or its answer) changes nothing.
    if command(s, "QUIT").await.is_ok() {
        let _ = reply(s).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls_are_read_with_their_security_and_credentials() {
        let c = SmtpConfig::from_url(
            "smtps://ops%40jt.test:p%3Ass@smtp.example.com",
            "JT <no-reply@jt.test>",
        )
        .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("smtp.example.com", 465));
        assert_eq!(c.security, SmtpSecurity::ImplicitTls);
        assert_eq!(c.username.as_deref(), Some("ops@jt.test"));
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        let c = SmtpConfig::from_url("smtp://relay.example.com:2525", "a@jt.test").unwrap();
        assert_eq!(c.port, 2525);
        assert_eq!(c.security, SmtpSecurity::StartTls { allow_plain: false });
        let c = SmtpConfig::from_url("smtp://127.0.0.1:25", "a@jt.test").unwrap();
        assert_eq!(c.security, SmtpSecurity::StartTls { allow_plain: true });
        let c = SmtpConfig::from_url("smtp://mail.internal?insecure", "a@jt.test").unwrap();
        assert_eq!(c.security, SmtpSecurity::StartTls { allow_plain: true });
        for bad in [
            "mail.example.com",
            "http://mail.example.com",
            "smtp://:25",
            "smtp://mail.example.com:port",
            "smtp://mail.example.com?tls=off",
            "smtp://u:%zz@mail.example.com",
        ] {
            assert!(SmtpConfig::from_url(bad, "a@jt.test").is_err(), "{bad}");
        }
        assert!(SmtpConfig::from_url("smtp://127.0.0.1", "nobody").is_err());
        // The password never appears in the configuration's debug text.
        let c = SmtpConfig::from_url("smtps://u:secret@h", "a@jt.test").unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
