//! The SMTP client against a local SMTP server written here (loopback, plain: a relay on the
//! same host), which speaks RFC 5321 and records what it receives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jt_mail::{Mail, Mailer, SmtpConfig, SmtpMailer, SmtpSecurity};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// What the server does.
#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    RefuseRecipient,
    BusyGreeting,
    Silent,
}

#[derive(Default)]
struct Received {
    commands: Vec<String>,
    data: String,
}

async fn server(behaviour: Behaviour) -> (u16, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Received::default()));
    let g = got.clone();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        match behaviour {
            Behaviour::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Behaviour::BusyGreeting => {
                w.write_all(b"421 busy, try later\r\n").await.unwrap();
                return;
            }
            _ => w.write_all(b"220 test ESMTP\r\n").await.unwrap(),
        }
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap() == 0 {
                return;
            }
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    w.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    g.lock().await.data.push_str(&line);
                }
                continue;
            }
            let cmd = line.trim_end().to_string();
            g.lock().await.commands.push(cmd.clone());
            let answer: &[u8] = if cmd.starts_with("EHLO") {
                b"250-test greets you\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
            } else if let Some(token) = cmd.strip_prefix("AUTH PLAIN ") {
                let plain = base64::engine::general_purpose::STANDARD
                    .decode(token)
                    .unwrap();
                if plain == b"\0ops@jt.test\0p@ss" {
                    b"235 ok\r\n"
                } else {
                    b"535 bad credentials\r\n"
                }
            } else if cmd.starts_with("MAIL FROM:") {
                b"250 ok\r\n"
            } else if cmd.starts_with("RCPT TO:") {
                match behaviour {
                    Behaviour::RefuseRecipient => b"550 no such user here\r\n",
                    _ => b"250 ok\r\n",
                }
            } else if cmd == "DATA" {
                in_data = true;
                b"354 go ahead\r\n"
            } else if cmd == "QUIT" {
                w.write_all(b"221 bye\r\n").await.unwrap();
                return;
            } else {
                b"502 not implemented\r\n"
            };
            w.write_all(answer).await.unwrap();
        }
    });
    (port, got)
}

fn config(port: u16) -> SmtpConfig {
    SmtpConfig::from_url(
        &format!("smtp://ops%40jt.test:p%40ss@127.0.0.1:{port}"),
        "Just Trades <no-reply@jt.test>",
    )
    .unwrap()
}

fn mail() -> Mail {
    Mail {
        to: "Trader <trader@example.com>".into(),
        subject: "Reset your password".into(),
        body: "Hello\n.hidden line\nBye".into(),
    }
}

#[tokio::test]
async fn a_mail_is_handed_over_with_auth_envelope_headers_and_dot_stuffing() {
    jt_mail_test_provider();
    let (port, got) = server(Behaviour::Accept).await;
    SmtpMailer::new(config(port)).send(&mail()).await.unwrap();
    let got = got.lock().await;
    let cmds: Vec<&str> = got.commands.iter().map(String::as_str).collect();
    assert_eq!(cmds[0], "EHLO jt.localdomain");
    assert!(cmds[1].starts_with("AUTH PLAIN "), "{cmds:?}");
    assert_eq!(
        &cmds[2..],
        [
            "MAIL FROM:<no-reply@jt.test>",
            "RCPT TO:<trader@example.com>",
            "DATA",
            "QUIT"
        ]
    );
    assert!(
        got.data
            .contains("From: Just Trades <no-reply@jt.test>\r\n"),
        "{}",
        got.data
    );
    assert!(got.data.contains("To: Trader <trader@example.com>\r\n"));
    assert!(got.data.contains("Subject: Reset your password\r\n"));
    // The line starting with a dot arrives stuffed, to be unstuffed by the server.
    assert!(
        got.data.contains("\r\nHello\r\n..hidden line\r\nBye\r\n"),
        "{}",
        got.data
    );
}

#[tokio::test]
async fn refusals_are_permanent_or_transient_as_the_server_says() {
    jt_mail_test_provider();
    let (port, _) = server(Behaviour::RefuseRecipient).await;
    let e = SmtpMailer::new(config(port))
        .send(&mail())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("550 no such user here"), "{e}");
    assert!(!e.is_transient());
    let (port, _) = server(Behaviour::BusyGreeting).await;
    let e = SmtpMailer::new(config(port))
        .send(&mail())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("421"), "{e}");
    assert!(e.is_transient());
    // Wrong credentials.
    let (port, _) = server(Behaviour::Accept).await;
    let mut c = config(port);
    c.password = Some("wrong".into());
    let e = SmtpMailer::new(c).send(&mail()).await.unwrap_err();
    assert!(e.to_string().contains("535"), "{e}");
}

#[tokio::test]
async fn a_server_without_starttls_gets_no_credentials_unless_plain_is_allowed() {
    jt_mail_test_provider();
    let (port, got) = server(Behaviour::Accept).await;
    let mut c = config(port);
    c.security = SmtpSecurity::StartTls { allow_plain: false };
    let e = SmtpMailer::new(c).send(&mail()).await.unwrap_err();
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
    assert!(
        !got.lock()
            .await
            .commands
            .iter()
            .any(|c| c.starts_with("AUTH")),
        "no password sent in clear"
    );
}

#[tokio::test]
async fn a_silent_server_is_given_up_on_in_time() {
    jt_mail_test_provider();
    let (port, _) = server(Behaviour::Silent).await;
    let mut c = config(port);
    c.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let e = SmtpMailer::new(c).send(&mail()).await.unwrap_err();
    assert!(e.to_string().contains("did not finish"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// rustls needs a process-wide provider before a client config is built.
fn jt_mail_test_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
