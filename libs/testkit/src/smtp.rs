//! A local SMTP server for tests: loopback, plain (a relay on the same host), speaking enough
//! of RFC 5321 for the platform's SMTP client, and recording every session — the commands and
//! the mail text — so a test can check what was handed over.
//!
//! It accepts any number of connections (one mail each, as the client sends them) until it is
//! dropped. AUTH PLAIN succeeds only with [`USER`] and [`PASSWORD`]; [`SmtpServer::url`] is a
//! `JT_SMTP_URL` carrying them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The login the server accepts.
pub const USER: &str = "ops@jt.test";
/// The password the server accepts.
pub const PASSWORD: &str = "p@ss";

/// What the server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Takes every mail.
    Accept,
    /// Refuses every recipient (550: permanent).
    RefuseRecipient,
    /// Greets with 421 and hangs up (transient).
    BusyGreeting,
    /// Accepts the connection and says nothing (a client time-out).
    Silent,
}

/// One connection: the commands received and the mail text (`DATA`, dot-stuffed as sent).
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Each command line, without its CRLF.
    pub commands: Vec<String>,
    /// The mail text received after `DATA`.
    pub data: String,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct SmtpServer {
    port: u16,
    sessions: Arc<Mutex<Vec<Session>>>,
    task: JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    /// Starts a server on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound (the test cannot run).
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding a loopback port for the SMTP test server: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the SMTP test server's address: {e}"))
            .port();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let s = sessions.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, behaviour, s).await;
                });
            }
        });
        Self {
            port,
            sessions,
            task,
        }
    }

    /// The server's port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `JT_SMTP_URL` for this server with the accepted login (`smtp://`, plain on loopback).
    #[must_use]
    pub fn url(&self) -> String {
        format!("smtp://ops%40jt.test:p%40ss@127.0.0.1:{}", self.port)
    }

    /// The sessions so far, in the order they started.
    #[must_use]
    pub fn sessions(&self) -> Vec<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The mail texts received so far (sessions that got to the end of `DATA`).
    #[must_use]
    pub fn mails(&self) -> Vec<String> {
        self.sessions()
            .into_iter()
            .filter(|s| !s.data.is_empty())
            .map(|s| s.data)
            .collect()
    }

    /// Waits until `n` mails have arrived, or `within` has passed; returns the mails.
    pub async fn wait_for_mails(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mails = self.mails();
            if mails.len() >= n || tokio::time::Instant::now() >= deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(
    sock: tokio::net::TcpStream,
    behaviour: Behaviour,
    sessions: Arc<Mutex<Vec<Session>>>,
) -> std::io::Result<()> {
    let index = {
        let mut all = sessions.lock().unwrap_or_else(PoisonError::into_inner);
        all.push(Session::default());
        all.len() - 1
    };
    let record = |f: &dyn Fn(&mut Session)| {
        let mut all = sessions.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut all[index]);
    };
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    match behaviour {
        Behaviour::Silent => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return Ok(());
        }
        Behaviour::BusyGreeting => {
            return w.write_all(b"421 busy, try later\r\n").await;
        }
        Behaviour::Accept | Behaviour::RefuseRecipient => {
            w.write_all(b"220 test ESMTP\r\n").await?;
        }
    }
    let mut in_data = false;
    let mut data = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let text = std::mem::take(&mut data);
                record(&|s| s.data.clone_from(&text));
                w.write_all(b"250 queued\r\n").await?;
            } else {
                data.push_str(&line);
            }
            continue;
        }
        let cmd = line.trim_end().to_string();
        record(&|s| s.commands.push(cmd.clone()));
        let answer: &[u8] = if cmd.starts_with("EHLO") {
            b"250-test greets you\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
        } else if let Some(token) = cmd.strip_prefix("AUTH PLAIN ") {
            let plain = base64::engine::general_purpose::STANDARD
                .decode(token)
                .unwrap_or_default();
            if plain == format!("\0{USER}\0{PASSWORD}").as_bytes() {
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
            return w.write_all(b"221 bye\r\n").await;
        } else {
            b"502 not implemented\r\n"
        };
        w.write_all(answer).await?;
    }
}
