//! SignalR connection negotiation, client side: `POST {hub}/negotiate?negotiateVersion=1`
//! with the token, then the WebSocket upgrade carries `id=<connectionToken>` — what SignalR's
//! own clients do unless told to skip it (dotnet/aspnetcore
//! `src/SignalR/docs/specs/TransportProtocols.md`; the JS client's `HttpConnection`).
//!
//! ProjectX's example skips it (`skipNegotiation`), so [`crate::config::HubConfig`]
//! leaves it off by default: negotiating costs one more request per connection, and behind a
//! load balancer without sticky sessions the upgrade may reach a server that never saw the
//! negotiation (404). It is there for a gateway that requires it.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// The negotiation answer; unknown fields are ignored, as the protocol asks.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    negotiate_version: i32,
    connection_id: Option<String>,
    connection_token: Option<String>,
    #[serde(default)]
    available_transports: Vec<Transport>,
    error: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transport {
    transport: String,
    #[serde(default)]
    transfer_formats: Vec<String>,
}

/// `{hub}/negotiate?negotiateVersion=1` over HTTP(S) for a `ws(s)://…/hubs/…` hub URL (its
/// query kept).
///
/// # Errors
/// A URL whose scheme is not ws, wss, http or https.
pub fn negotiate_url(hub: &Url) -> Result<Url, String> {
    let mut u = hub.clone();
    let scheme = match hub.scheme() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        other => return Err(format!("{hub}: scheme {other} cannot negotiate")),
    };
    u.set_scheme(scheme)
        .map_err(|()| format!("{hub}: cannot use {scheme}"))?;
    let path = format!("{}/negotiate", hub.path().trim_end_matches('/'));
    u.set_path(&path);
    u.query_pairs_mut().append_pair("negotiateVersion", "1");
    Ok(u)
}

/// The `id` of the upgrade, from a negotiation answer.
///
/// # Errors
/// The server's `error`, a redirect (Azure SignalR's; ProjectX serves its own hubs), no
/// WebSockets transport with text frames, or no connection id.
pub fn connection_id(body: &str) -> Result<String, String> {
    let a: Answer =
        serde_json::from_str(body).map_err(|e| format!("negotiation answer unreadable: {e}"))?;
    if let Some(e) = a.error {
        return Err(format!("negotiation refused: {e}"));
    }
    if let Some(url) = a.url {
        return Err(format!("negotiation redirects to {url}: not supported"));
    }
    let websockets = a
        .available_transports
        .iter()
        .any(|t| t.transport == "WebSockets" && t.transfer_formats.iter().any(|f| f == "Text"));
    if !websockets {
        return Err("negotiation offers no WebSockets transport with text frames".into());
    }
    // Version 0 has no token: the connection id is the id.
    let id = if a.negotiate_version >= 1 {
        a.connection_token
    } else {
        a.connection_id
    };
    id.filter(|i| !i.is_empty())
        .ok_or_else(|| "negotiation answer without a connection id".into())
}

/// Negotiates a connection to `hub` with `token`; returns the `id` for the upgrade.
///
/// # Errors
/// A text naming the HTTP status (`HTTP 401` for a refused token), the transport error or
/// the refusal.
pub async fn negotiate(
    http: &reqwest::Client,
    hub: &Url,
    token: &str,
    timeout: Duration,
) -> Result<String, String> {
    let url = negotiate_url(hub)?;
    let r = http
        .post(url)
        .bearer_auth(token)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("negotiate: {e}"))?;
    let status = r.status();
    let body = r.text().await.map_err(|e| format!("negotiate: {e}"))?;
    if !status.is_success() {
        return Err(format!("negotiate: HTTP {}", status.as_u16()));
    }
    connection_id(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_negotiation_is_posted_next_to_the_hub() {
        let u = negotiate_url(&Url::parse("wss://rtc.topstepx.com/hubs/user").unwrap()).unwrap();
        assert_eq!(
            u.as_str(),
            "https://rtc.topstepx.com/hubs/user/negotiate?negotiateVersion=1"
        );
        let u = negotiate_url(&Url::parse("ws://127.0.0.1:9/hubs/user/?x=1").unwrap()).unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/hubs/user/negotiate?x=1&negotiateVersion=1"
        );
        assert!(negotiate_url(&Url::parse("ftp://x/hubs/user").unwrap()).is_err());
    }

    #[test]
    fn the_upgrade_id_is_the_token_from_version_1_the_connection_id_before() {
        let ws = r#""availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]"#;
        assert_eq!(
            connection_id(&format!(
                r#"{{"negotiateVersion":1,"connectionId":"pub","connectionToken":"secret",{ws}}}"#
            )),
            Ok("secret".into())
        );
        assert_eq!(
            connection_id(&format!(
                r#"{{"negotiateVersion":0,"connectionId":"pub",{ws}}}"#
            )),
            Ok("pub".into())
        );
        assert_eq!(
            connection_id(r#"{"error":"The client requested a non-integer protocol version."}"#),
            Err("negotiation refused: The client requested a non-integer protocol version.".into())
        );
        assert!(connection_id(r#"{"url":"https://x/hub","accessToken":"t"}"#).is_err());
        assert!(
            connection_id(
                r#"{"negotiateVersion":1,"connectionId":"a","connectionToken":"b","availableTransports":[{"transport":"LongPolling","transferFormats":["Text"]}]}"#
            )
            .is_err()
        );
        assert!(connection_id(&format!(r#"{{"negotiateVersion":1,{ws}}}"#)).is_err());
        assert!(connection_id("nope").is_err());
    }
}
