//! Extractors whose failures are problem+json responses: the caller's token, a query
//! string, a body.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::auth::{Permission, Principal};
use crate::problem::ApiError;

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(ApiError::unauthorized)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .ok_or_else(ApiError::unauthorized)?;
        let principal = state.tokens.authenticate(token.trim())?.ok_or_else(ApiError::unauthorized)?;
        tracing::debug!(token_id = %principal.token_id, role = ?principal.role, "authenticated");
        Ok(principal)
    }
}

impl Principal {
    /// `Ok` when the role allows `permission`; 403 otherwise.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("the {:?} role may not do this ({permission:?})", self.role)))
        }
    }
}

/// A query string parsed into `T`; a bad one is a 400 problem.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<QueryParams<T>, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|error| ApiError::malformed(format!("query string: {error}")))
    }
}

/// The whole body, within the route's size limit (413 beyond it).
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Body, ApiError> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "the request body is larger than this route accepts",
            )),
            Err(rejection) => Err(ApiError::malformed(rejection.body_text())),
        }
    }
}

/// Parses a JSON body: a syntax error is 400, a body of the wrong shape (wrong types,
/// unknown or missing fields) is 422. A whole number written with a fraction (`3.0`) is the
/// integer it is, as JSON has it.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::malformed(format!("body is not valid JSON: {error}")))?;
    events_schema::whole_numbers_as_integers(&mut value);
    serde_json::from_value(value).map_err(|error| ApiError::invalid(format!("body: {error}")))
}

/// The one path parameter of a route, as text; a bad one (not UTF-8) is a 400 problem.
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathParam, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParam(value))
            .map_err(|rejection| ApiError::malformed(rejection.body_text()))
    }
}
