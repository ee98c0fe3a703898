//! One error body for every answer that is not a success, and the extractors that produce it.
//!
//! Every 4xx and 5xx of the API is `{"error": {"code", "message", "field"?}}`: `code` is a
//! stable machine word (`invalid`, `not_found`, …), `message` says what to do in words, and
//! `field` names the input that was refused (a JSON path such as `settings.tp_targets[0].value`,
//! a query parameter, a header). Bad input is always a 4xx, never a 500: axum's own rejections
//! (malformed JSON, a missing content type, a path id that is not a UUID) go through the
//! extractors of this module, which answer with the same body.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jt_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable word for programs: `invalid`, `malformed`, `unauthenticated`, `forbidden`,
    /// `csrf`, `not_found`, `conflict`, `rate_limited`, `payload_too_large`,
    /// `unsupported_media_type`, `method_not_allowed`, `unavailable`, `broker`, `internal`.
    pub code: String,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// The refused input (JSON path, query parameter, header), when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answer: a status and the [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body's `code`.
    pub code: &'static str,
    /// The body's `message`.
    pub message: String,
    /// The body's `field`.
    pub field: Option<String>,
    /// Seconds to wait (429), sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

/// Handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Names the refused input.
    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 422: `field` breaks `rule`.
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        let field = field.into();
        let rule = rule.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("{field}: {rule}"),
        )
        .field(field)
    }

    /// 404 for `what` (the same answer for a missing record and another user's).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 401.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 429 with a wait.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// 503: a dependency (database, bus) is not reachable right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 for what is our fault; the detail is logged, never shown.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering an API request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it was logged",
        )
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = axum::http::HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, .. } => ApiError::not_found(entity),
            StoreError::Conflict { entity, detail } => {
                ApiError::conflict(format!("{entity}: {}", conflict_words(&detail)))
            }
            StoreError::Invalid { what, reason } => ApiError::invalid(what, reason),
            StoreError::InvalidTransition { .. } => ApiError::conflict(e.to_string()),
            StoreError::NotAdmin(_) => ApiError::forbidden("this needs an admin"),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::unavailable("the database is not reachable right now; retry shortly")
            }
            other => ApiError::internal(other),
        }
    }
}

/// A unique-constraint detail is the database's text (it can name an index); the repositories
/// that care rewrite it, the rest become a plain sentence.
fn conflict_words(detail: &str) -> String {
    if detail.contains("UNIQUE") || detail.contains("duplicate key") || detail.contains("unique") {
        "already exists".to_string()
    } else {
        detail.to_string()
    }
}

impl From<jt_domain::settings::SettingsError> for ApiError {
    fn from(e: jt_domain::settings::SettingsError) -> Self {
        ApiError::invalid(format!("settings.{}", e.setting), e.reason)
    }
}

/// `axum::Json` with the API's error body: malformed JSON is a 400 (`malformed`), a value
/// of the wrong type or a missing or unknown field a 422 naming the field, a missing content
/// type a 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(JsonRejection::MissingJsonContentType(_)) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with `Content-Type: application/json`",
                )
                .field("content-type"));
            }
            Err(JsonRejection::BytesRejection(e)) => {
                return Err(ApiError::new(
                    e.status(),
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        "payload_too_large"
                    } else {
                        "malformed"
                    },
                    e.body_text(),
                ));
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    format!("the body is not valid JSON: {}", e.body_text()),
                ));
            }
        };
        parse_value(bytes).map(Json)
    }
}

/// Decodes a JSON value into `T`, naming the path of the first refused field.
///
/// # Errors
/// A 422 naming the field and what was expected.
pub fn parse_value<T: DeserializeOwned>(v: serde_json::Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." {
            // A missing or unknown field sits at the level that lacks or has it: the message
            // names it (`missing field `email``).
            backticked(&inner).unwrap_or_else(|| "body".to_string())
        } else if let Some(name) = inner
            .starts_with("missing field")
            .then(|| backticked(&inner))
            .flatten()
        {
            format!("{path}.{name}")
        } else {
            path
        };
        ApiError::invalid(field, inner)
    })
}

fn backticked(s: &str) -> Option<String> {
    let start = s.find('`')? + 1;
    let end = s[start..].find('`')? + start;
    Some(s[start..end].to_string())
}

impl<T> IntoResponse for Json<T>
where
    T: Serialize,
{
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with the API's error body (400 naming the parameter).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                let field = if detail.contains("field `") {
                    backticked(detail)
                } else {
                    detail
                        .split_once(": ")
                        .map(|(f, _)| f.to_string())
                        .filter(|f| !f.contains(' '))
                }
                .unwrap_or_else(|| "query".to_string());
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", text).field(field))
            }
            Err(e) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.body_text()).field("query"))
            }
        }
    }
}

/// `axum::extract::Path` with the API's error body: an id that is not an id is "not found",
/// exactly like an id that does not exist (nothing to tell apart for a prober).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(_) => Err(ApiError::not_found("record")),
        }
    }
}

/// Answers unknown routes with the error body.
pub async fn fallback() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// Rewrites axum's bare 405 answers into the error body.
pub async fn method_not_allowed(req: Request, next: axum::middleware::Next) -> Response {
    let r = next.run(req).await;
    if r.status() == StatusCode::METHOD_NOT_ALLOWED && r.headers().get("content-type").is_none() {
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take this method",
        )
        .into_response();
        if let Some(allow) = r.headers().get(axum::http::header::ALLOW) {
            e.headers_mut()
                .insert(axum::http::header::ALLOW, allow.clone());
        }
        return e;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        value: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        legs: Vec<Inner>,
    }

    #[test]
    fn a_refused_field_is_named_by_its_path() {
        let e = parse_value::<Outer>(serde_json::json!({"name": "a", "legs": [{"value": -1}]}))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("legs[0].value"));

        let e = parse_value::<Outer>(serde_json::json!({"legs": []})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"), "{e:?}");

        let e = parse_value::<Outer>(serde_json::json!({"name": "a", "legs": [{}]})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("legs[0].value"), "{e:?}");

        let e =
            parse_value::<Outer>(serde_json::json!({"name": "a", "legs": [], "x": 1})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("x"), "{e:?}");
    }
}
