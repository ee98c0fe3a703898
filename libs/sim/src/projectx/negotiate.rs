//! SignalR's connection negotiation for the two hubs: `POST /hubs/{user,market}/negotiate`,
//! answered as ASP.NET Core answers it, then the WebSocket upgrade with `?id=`.
//!
//! Source: the transport protocol specification (dotnet/aspnetcore,
//! `src/SignalR/docs/specs/TransportProtocols.md`) and the server that implements it
//! (`src/SignalR/common/Http.Connections/src/Internal/HttpConnectionDispatcher.cs`,
//! `HttpConnectionManager.cs`, `Http.Connections.Common/src/NegotiateProtocol.cs`):
//!
//! - only `POST` (another method: 405, `text/plain`, empty);
//! - `negotiateVersion` from the query (any case): absent → 0; not an integer → HTTP 200
//!   `{"error":"The client requested a non-integer protocol version."}`; below 0 → HTTP 200
//!   `{"error":"The client requested version '-1', but the server does not support this
//!   version."}`; above 1 → 1 (the server's highest);
//! - the answer `{"negotiateVersion", "connectionId", ["connectionToken" from version 1],
//!   "availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}`,
//!   in that order; ids are 16 random bytes in unpadded base64url (22 characters); at version 0
//!   the token is the connection id itself;
//! - the upgrade names the connection with `id=<connectionToken>` (the connection id at
//!   version 0): unknown → 404 `No Connection with that ID`, one already connected → 409; a
//!   negotiated connection not connected within the disconnect timeout (15 s) is forgotten, and
//!   one that has connected is forgotten when its socket ends (its id cannot be used twice).
//!
//! Authentication is the hub's (the caller checks the token exactly as for the upgrade).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use rand::RngCore;

use super::hubs::HubKind;

/// The highest negotiate version ASP.NET Core speaks.
pub const MAX_VERSION: i32 = 1;

/// The version a negotiate request asks for, as the server settles it (`Err`: the text of the
/// `error` answer).
///
/// # Errors
/// A version that is not an integer, or below 0.
pub fn version(query: &[(String, String)]) -> Result<i32, String> {
    let Some((_, asked)) = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("negotiateVersion"))
    else {
        return Ok(0);
    };
    // .NET's int.TryParse: surrounding blanks and a sign are accepted.
    let v: i32 = asked
        .trim()
        .parse()
        .map_err(|_| "The client requested a non-integer protocol version.".to_string())?;
    if v < 0 {
        return Err(format!(
            "The client requested version '{v}', but the server does not support this version."
        ));
    }
    Ok(v.min(MAX_VERSION))
}

/// The body of a successful negotiation, fields in ASP.NET's order.
#[must_use]
pub fn answer(version: i32, connection_id: &str, connection_token: &str) -> String {
    let token = if version > 0 {
        format!(r#","connectionToken":"{connection_token}""#)
    } else {
        String::new()
    };
    format!(
        r#"{{"negotiateVersion":{version},"connectionId":"{connection_id}"{token},"availableTransports":[{{"transport":"WebSockets","transferFormats":["Text","Binary"]}}]}}"#
    )
}

/// The body of a refused negotiation.
#[must_use]
pub fn refusal(error: &str) -> String {
    serde_json::json!({ "error": error }).to_string()
}

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug)]
struct Pending {
    kind: HubKind,
    created: Instant,
    connected: bool,
}

/// Why an upgrade's `id` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No such connection (never negotiated, expired, already used, another hub): 404.
    NotFound,
    /// The connection already has its WebSocket: 409.
    Conflict,
}

/// Negotiated connections waiting for (or holding) their WebSocket, by connection token.
#[derive(Debug)]
pub struct Negotiations {
    pending: Arc<DashMap<String, Pending>>,
    timeout: Duration,
}

impl Negotiations {
    /// Connections not connected within `timeout` are forgotten.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Negotiations {
            pending: Arc::new(DashMap::new()),
            timeout,
        }
    }

    /// A new connection of `kind` at `version`: `(connectionId, connectionToken)`.
    pub fn create(&self, kind: HubKind, version: i32) -> (String, String) {
        let timeout = self.timeout;
        self.pending
            .retain(|_, p| p.connected || p.created.elapsed() <= timeout);
        let id = new_id();
        let token = if version > 0 { new_id() } else { id.clone() };
        self.pending.insert(
            token.clone(),
            Pending {
                kind,
                created: Instant::now(),
                connected: false,
            },
        );
        (id, token)
    }

    /// Takes the connection an upgrade names; it is forgotten when the returned guard drops
    /// (the socket ended, or the upgrade never completed).
    ///
    /// # Errors
    /// [`Refused`] for an unknown, expired, foreign-hub or already connected id.
    pub fn claim(&self, token: &str, kind: HubKind) -> Result<Claim, Refused> {
        let mut entry = self.pending.get_mut(token).ok_or(Refused::NotFound)?;
        if entry.kind != kind {
            return Err(Refused::NotFound);
        }
        if entry.connected {
            return Err(Refused::Conflict);
        }
        if entry.created.elapsed() > self.timeout {
            drop(entry);
            self.pending.remove(token);
            return Err(Refused::NotFound);
        }
        entry.connected = true;
        Ok(Claim {
            pending: self.pending.clone(),
            token: token.to_string(),
        })
    }

    /// Connections remembered now (tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A negotiated connection in use by one WebSocket; dropping it forgets the connection.
#[derive(Debug)]
pub struct Claim {
    pending: Arc<DashMap<String, Pending>>,
    token: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.pending.remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn versions_settle_as_asp_net_settles_them() {
        assert_eq!(version(&q(&[])), Ok(0));
        assert_eq!(version(&q(&[("negotiateVersion", "1")])), Ok(1));
        assert_eq!(version(&q(&[("NegotiateVersion", "0")])), Ok(0));
        assert_eq!(version(&q(&[("negotiateVersion", "7")])), Ok(1));
        assert_eq!(version(&q(&[("negotiateVersion", " +1 ")])), Ok(1));
        assert_eq!(
            version(&q(&[("negotiateVersion", "one")])),
            Err("The client requested a non-integer protocol version.".into())
        );
        assert_eq!(
            version(&q(&[("negotiateVersion", "-1")])),
            Err(
                "The client requested version '-1', but the server does not support this version."
                    .into()
            )
        );
    }

    #[test]
    fn answers_carry_the_token_from_version_1() {
        let v1: serde_json::Value = serde_json::from_str(&answer(1, "abc", "def")).unwrap();
        assert_eq!(
            v1,
            serde_json::json!({"negotiateVersion": 1, "connectionId": "abc",
                "connectionToken": "def", "availableTransports":
                [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}]})
        );
        assert!(answer(1, "abc", "def").starts_with(r#"{"negotiateVersion":1,"connectionId""#));
        let v0: serde_json::Value = serde_json::from_str(&answer(0, "abc", "abc")).unwrap();
        assert!(v0.get("connectionToken").is_none());
        assert_eq!(v0["negotiateVersion"], 0);
    }

    #[test]
    fn a_connection_is_claimed_once_then_forgotten() {
        let n = Negotiations::new(Duration::from_secs(15));
        let (id, token) = n.create(HubKind::User, 1);
        assert_eq!((id.len(), token.len()), (22, 22));
        assert_ne!(id, token);
        assert_eq!(
            n.claim(&id, HubKind::User).unwrap_err(),
            Refused::NotFound,
            "version 1 connects with the token, not the id"
        );
        assert_eq!(
            n.claim(&token, HubKind::Market).unwrap_err(),
            Refused::NotFound
        );
        let claim = n.claim(&token, HubKind::User).unwrap();
        assert_eq!(
            n.claim(&token, HubKind::User).unwrap_err(),
            Refused::Conflict
        );
        drop(claim);
        assert!(n.is_empty());
        assert_eq!(
            n.claim(&token, HubKind::User).unwrap_err(),
            Refused::NotFound
        );
        let (id, token) = n.create(HubKind::Market, 0);
        assert_eq!(id, token, "version 0: the id is the token");
    }

    #[test]
    fn unused_connections_expire() {
        let n = Negotiations::new(Duration::from_millis(1));
        let (_, token) = n.create(HubKind::User, 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            n.claim(&token, HubKind::User).unwrap_err(),
            Refused::NotFound
        );
        n.create(HubKind::User, 1);
        std::thread::sleep(Duration::from_millis(5));
        n.create(HubKind::User, 1);
        assert_eq!(n.len(), 1, "expired ones are swept on the next negotiation");
    }
}
