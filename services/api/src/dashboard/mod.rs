//! The dashboard: a browser application served by the API service at `/` (and so by `jt dev`
//! and `jt api` on their one listener), built into the binary so `make run` needs nothing but
//! the Rust toolchain — no Node, no front-end build.
//!
//! The pages are plain ES modules and one style sheet under `services/api/dashboard/`, embedded
//! with `include_bytes!` in [`ASSETS`]. They talk to the REST API (`/api/v1`) with the session
//! cookie like any other client; nothing here reads the store. The server side is only this:
//!
//! - `/assets/<path>` answers an embedded file with its content type, a strong `ETag` (a hash
//!   of its bytes) and `Cache-Control: no-cache` — the browser keeps it and revalidates with
//!   one cheap 304, so a new build is picked up at once without hashed file names (which ES
//!   module imports between files would make awkward). Anything else under `/assets/` is 404.
//! - `/` and each page's path ([`PAGES`], with anything below it) answer `index.html`; the
//!   script's router draws the page from the URL, so a reload or a mailed link
//!   (`/reset-password?token=…`) lands on the right page.
//! - Every answer carries a Content-Security-Policy allowing only this origin's scripts,
//!   styles and requests (no inline script, no framing), `X-Content-Type-Options: nosniff`,
//!   `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer` (a reset token in the URL must
//!   not leak to another site).
//!
//! The router has no fallback, so it merges with the other services' routers (`jt dev`).

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// One embedded file of the dashboard.
#[derive(Debug)]
pub struct Asset {
    /// Its path under `/assets/` (and under `services/api/dashboard/`).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../../dashboard/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard. A file added under `services/api/dashboard/` must be listed
/// here (the unit test below fails otherwise).
pub static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/router.js", JS),
    asset!("js/api.js", JS),
    asset!("js/ui.js", JS),
    asset!("js/settings.js", JS),
    asset!("js/live.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/pages/signin.js", JS),
    asset!("js/pages/tokens.js", JS),
    asset!("js/pages/recorders.js", JS),
    asset!("js/pages/signals.js", JS),
    asset!("js/pages/accounts.js", JS),
    asset!("js/pages/copy.js", JS),
    asset!("js/pages/charts.js", JS),
    asset!("js/pages/admin.js", JS),
];

/// The first path segment of every page the script's router draws; each answers `index.html`
/// (and so does anything below it, e.g. `/recorders/<id>`).
pub const PAGES: &[&str] = &[
    "signin",
    "reset-password",
    "tokens",
    "recorders",
    "signals",
    "accounts",
    "copy",
    "charts",
    "admin",
];

/// The policy of every dashboard answer: this origin only, no inline script or style
/// attribute, no plugins, never framed. `style-src 'self'` still lets a script set
/// `element.style.width` (CSSOM), which the timeline bars use.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Each asset's strong ETag, computed once from its bytes.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The dashboard's routes: `/`, each page of [`PAGES`] and `/assets/{*path}`.
pub fn router() -> Router {
    let mut router = Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset));
    for page in PAGES {
        router = router
            .route(&format!("/{page}"), get(index))
            .route(&format!("/{page}/{{*rest}}"), get(index));
    }
    router
}

fn find(path: &str) -> Option<(&'static Asset, &'static str)> {
    ASSETS
        .iter()
        .zip(ETAGS.iter())
        .find(|(a, _)| a.path == path)
        .map(|(a, e)| (a, e.as_str()))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // index.html is reached through its pages, not as an asset (one URL per thing).
    if path == "index.html" {
        return not_found();
    }
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some((asset, etag)) = find(path) else {
        return not_found();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(h);
    response
}

fn not_found() -> Response {
    let mut r = (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "no such dashboard file\n",
    )
        .into_response();
    secure(r.headers_mut());
    r
}

fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get_path(path: &str, etag: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(path);
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        let r = router()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = r.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    #[test]
    fn every_file_under_the_dashboard_folder_is_embedded_and_nothing_else() {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard");
        let mut on_disk = Vec::new();
        walk(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "list new dashboard files in ASSETS");
    }

    #[tokio::test]
    async fn pages_answer_the_index_with_the_security_headers() {
        for path in [
            "/",
            "/signin",
            "/recorders",
            "/recorders/abc/edit",
            "/admin/users",
        ] {
            let (status, h, body) = get_path(path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let html = String::from_utf8(body).unwrap();
            assert!(html.contains("/assets/js/app.js"), "{html}");
            // No inline script: the policy would block it anyway, so one here is a bug.
            assert!(!html.contains("<script>"), "{html}");
        }
    }

    #[tokio::test]
    async fn assets_have_their_type_and_an_etag_that_revalidates() {
        let (status, h, body) = get_path("/assets/js/app.js", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], JS);
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(!body.is_empty());
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let (status, h, body) = get_path("/assets/js/app.js", Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(h[header::ETAG].to_str().unwrap(), etag);
        assert!(body.is_empty());
        let (status, _, _) = get_path("/assets/js/app.js", Some("\"stale\"")).await;
        assert_eq!(status, StatusCode::OK);
        let (_, h, _) = get_path("/assets/app.css", None).await;
        assert_eq!(h[header::CONTENT_TYPE], "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn unknown_assets_and_paths_are_not_found() {
        for path in [
            "/assets/nope.js",
            "/assets/index.html",
            "/assets/../Cargo.toml",
            "/assets/js/../../src/lib.rs",
        ] {
            let (status, h, _) = get_path(path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        let (status, _, _) = get_path("/nowhere", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
