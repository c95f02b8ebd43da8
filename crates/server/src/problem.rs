//! Errors as HTTP responses: every failure becomes an `application/problem+json` body
//! (RFC 9457) here, and only here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::RefusalClass;
use serde::Serialize;
use service::{ErrorClass, ServiceError};
use store::{Rejection, StoreError};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// A failed request: its status, a stable kind (the last part of the problem `type`), and
/// a sentence for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub detail: String,
    /// Seconds for a `Retry-After` header (a store that is full or being reopened).
    pub retry_after: Option<u32>,
}

/// `Retry-After` of a 503 while the store is reopened after a failed write (it takes a
/// moment), and of a 507 while the disk is full (an operator must free space first).
pub const RETRY_AFTER_UNAVAILABLE_SECONDS: u32 = 2;
pub const RETRY_AFTER_STORAGE_FULL_SECONDS: u32 = 30;

/// The body of a problem response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<kind>`, e.g. `/problems/conflict`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, kind, detail: detail.into(), retry_after: None }
    }

    /// 400: the request could not be read (malformed JSON, a bad query parameter).
    pub fn malformed(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed-request", detail)
    }

    /// 422: well-formed, but not a valid request (wrong types, unknown fields, bad values).
    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 500/503: logged in full (with the request id of the span it happens in); the body
    /// hides the internals.
    pub fn internal(error: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(%error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "the server failed; the log names the cause under this response's x-request-id",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let problem = Problem {
            problem_type: format!("/problems/{}", self.kind),
            title,
            status: self.status.as_u16(),
            detail: self.detail,
        };
        // Four plain fields: failing to serialize them would be a bug, not an operating error.
        let body = serde_json::to_vec(&problem).expect("a problem body serializes");
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl ApiError {
    /// The problem for a failure of class `class` (the one mapping, shared with the CLI's
    /// exit codes): 422, 404, 409, 503 or 507 with `Retry-After`, or 500 with the cause
    /// logged and hidden.
    fn classed(class: ErrorClass, kind: &'static str, error: &dyn std::fmt::Display) -> ApiError {
        match class {
            ErrorClass::Invalid => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, kind, error.to_string()),
            ErrorClass::NotFound => ApiError::new(StatusCode::NOT_FOUND, kind, error.to_string()),
            ErrorClass::Conflict => ApiError::new(StatusCode::CONFLICT, kind, error.to_string()),
            ErrorClass::Unavailable => {
                tracing::warn!(%error, "the store is unavailable");
                let mut problem = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the log is not taking work right now (it is being reopened after a failed write, \
                     or the server is stopping); nothing of this request was written: retry it",
                );
                problem.retry_after = Some(RETRY_AFTER_UNAVAILABLE_SECONDS);
                problem
            }
            ErrorClass::StorageFull => {
                tracing::warn!(%error, "a write was refused: the disk is full");
                let mut problem = ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "disk-full", error.to_string());
                problem.retry_after = Some(RETRY_AFTER_STORAGE_FULL_SECONDS);
                problem
            }
            ErrorClass::Integrity | ErrorClass::Internal => ApiError::internal(error),
        }
    }
}

impl From<StoreError> for ApiError {
    /// 503 while the store is reopened, 507 when its disk is full, 500 otherwise.
    fn from(error: StoreError) -> ApiError {
        ApiError::classed(ErrorClass::of_store(&error), "internal-error", &error)
    }
}

impl From<crate::auth::TokensUnavailable> for ApiError {
    /// 503 `tokens-unavailable` with `Retry-After`: no token can be checked on this node now.
    /// The body says so in one fixed sentence (the caller may not be anyone yet); the cause is
    /// logged where it is found ([`crate::TokenFile::checkable`]).
    fn from(_: crate::auth::TokensUnavailable) -> ApiError {
        ApiError::tokens_unavailable()
    }
}

impl ApiError {
    pub fn tokens_unavailable() -> ApiError {
        let mut problem = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tokens-unavailable",
            "no token can be checked on this server right now (its token list cannot be read, or, on a \
             cluster, it cannot prove that it holds the latest changes); nothing of this request was done: \
             retry it, here or on another node",
        );
        problem.retry_after = Some(RETRY_AFTER_UNAVAILABLE_SECONDS);
        problem
    }
}

impl From<projections::RenderError> for ApiError {
    /// 500: a report that cannot be rendered is a bug, not a bad request. The log holds the
    /// whole chain (the template engine's error names the template line).
    fn from(error: projections::RenderError) -> ApiError {
        let mut chain = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        ApiError::internal(&chain)
    }
}

impl From<Rejection> for ApiError {
    /// 422 for an invalid append; 409 for a wrong expected version or a reused event id.
    fn from(rejection: Rejection) -> ApiError {
        let kind = match rejection {
            Rejection::Invalid(_) => "invalid-request",
            Rejection::WrongExpectedVersion { .. } => "wrong-expected-version",
            Rejection::EventIdInUse { .. } => "event-id-in-use",
        };
        ApiError::classed(ErrorClass::of_rejection(&rejection), kind, &rejection)
    }
}

impl From<ServiceError> for ApiError {
    /// By the error's class: rule refusals are 404 for an unknown entity, 422 for a command
    /// that is not valid in any state (bad data, a time in the future, an amendment the
    /// rules never allow), 409 for a transition the entity's current state does not allow.
    fn from(error: ServiceError) -> ApiError {
        let class = error.class();
        match error {
            ServiceError::Rejected(rejection) => rejection.into(),
            ServiceError::Store(error) => error.into(),
            ServiceError::Refused(refusal) => {
                let kind = match refusal.class() {
                    RefusalClass::NotFound => "not-found",
                    RefusalClass::InvalidTransition => "invalid-transition",
                    RefusalClass::InvalidCommand => "invalid-request",
                };
                ApiError::classed(class, kind, &refusal)
            }
            ServiceError::InvalidStream(error) => ApiError::classed(class, "invalid-request", &error),
            ServiceError::TooManyConflicts => ApiError::classed(class, "too-many-conflicts", &error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_cannot_be_checked_are_a_503_to_retry_not_a_401() {
        let unconfirmed = crate::auth::TokensUnavailable::Unconfirmed(Some(std::time::Duration::from_secs(25)));
        let response = ApiError::from(unconfirmed).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], RETRY_AFTER_UNAVAILABLE_SECONDS.to_string());
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE), "the token is not said to be wrong");
    }
}
