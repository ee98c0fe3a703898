//! A minimal HTTP/1.1 keep-alive client: one request at a time per connection, requests
//! written in one piece, responses read by `Content-Length`.
//!
//! The load generator shares the 2 cores with the services it measures, so it must cost as
//! little as possible per request; a general client (pools, header maps, body streams) would
//! spend more CPU per request than the floor server does.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    request: Vec<u8>,
    buffer: Vec<u8>,
    host: String,
}

/// An answer: the status and the body.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body (empty unless asked for).
    pub body: Vec<u8>,
}

impl Connection {
    /// Connects with `TCP_NODELAY` (requests are single writes; Nagle would only delay them).
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            request: Vec::with_capacity(1024),
            buffer: Vec::with_capacity(16 * 1024),
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads its answer; `keep_body` copies the body out.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        keep_body: bool,
    ) -> anyhow::Result<Answer> {
        self.request.clear();
        self.request.extend_from_slice(method.as_bytes());
        self.request.push(b' ');
        self.request.extend_from_slice(path.as_bytes());
        self.request.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        self.request.extend_from_slice(self.host.as_bytes());
        self.request
            .extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
        self.request
            .extend_from_slice(body.len().to_string().as_bytes());
        self.request.extend_from_slice(b"\r\n\r\n");
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await?;
        self.read_answer(keep_body).await
    }

    async fn read_answer(&mut self, keep_body: bool) -> anyhow::Result<Answer> {
        loop {
            if let Some(head_end) = find(&self.buffer, b"\r\n\r\n") {
                let head = &self.buffer[..head_end];
                let status = parse_status(head)?;
                // 204 and 304 carry no body and (axum) no content-length.
                let length = if matches!(status, 204 | 304) {
                    0
                } else {
                    content_length(head)?
                };
                let total = head_end + 4 + length;
                while self.buffer.len() < total {
                    self.fill().await?;
                }
                let body = if keep_body {
                    self.buffer[head_end + 4..total].to_vec()
                } else {
                    Vec::new()
                };
                self.buffer.drain(..total);
                return Ok(Answer { status, body });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.buffer.capacity() - self.buffer.len() < 4096 {
            self.buffer.reserve(16 * 1024);
        }
        let n = self.stream.read_buf(&mut self.buffer).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(head: &[u8]) -> anyhow::Result<u16> {
    // "HTTP/1.1 200 OK"
    let code = head.get(9..12).context("short status line")?;
    std::str::from_utf8(code)?
        .parse()
        .context("status code is not a number")
}

fn content_length(head: &[u8]) -> anyhow::Result<usize> {
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            return std::str::from_utf8(&line[15..])?
                .trim()
                .parse()
                .context("content-length is not a number");
        }
    }
    bail!(
        "answer without content-length: {}",
        String::from_utf8_lossy(head)
    )
}

/// One request on a fresh connection (set-up and admin calls, not measured).
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<Answer> {
    let mut c = Connection::open(addr).await?;
    c.send(method, path, body, true).await
}

/// Like [`call`], but a status other than 2xx is an error naming the call and the body.
pub async fn call_ok(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let answer = call(addr, method, path, body).await?;
    if !(200..300).contains(&answer.status) {
        bail!(
            "{method} {path} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(answer.body)
}
