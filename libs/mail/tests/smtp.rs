//! The SMTP client against the local SMTP server of `jt-testkit` (loopback, plain: a relay on
//! the same host), which speaks RFC 5321 and records what it receives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jt_mail::{Mail, Mailer, SmtpConfig, SmtpMailer, SmtpSecurity};
use jt_testkit::smtp::{Behaviour, SmtpServer};

async fn server(behaviour: Behaviour) -> (u16, SmtpServer) {
    let s = SmtpServer::start(behaviour).await;
    (s.port(), s)
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
    let got = got.sessions().remove(0);
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
    let (port, _s) = server(Behaviour::RefuseRecipient).await;
    let e = SmtpMailer::new(config(port))
        .send(&mail())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("550 no such user here"), "{e}");
    assert!(!e.is_transient());
    let (port, _s) = server(Behaviour::BusyGreeting).await;
    let e = SmtpMailer::new(config(port))
        .send(&mail())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("421"), "{e}");
    assert!(e.is_transient());
    // Wrong credentials.
    let (port, _s) = server(Behaviour::Accept).await;
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
        !got.sessions()[0]
            .commands
            .iter()
            .any(|c| c.starts_with("AUTH")),
        "no password sent in clear"
    );
}

#[tokio::test]
async fn a_silent_server_is_given_up_on_in_time() {
    jt_mail_test_provider();
    let (port, _s) = server(Behaviour::Silent).await;
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
