//! The web dashboard: server-rendered pages over the same read models as the API, for gate
//! staff on phones, supervisors at a desk and auditors with a printer.
//!
//! Pages are minijinja templates (`web/templates`, embedded); the few scripts and the
//! stylesheet are embedded assets served with ETags, compression and hashed routes
//! (`web/static`). htmx (vendored) refreshes the board when the live board feed says the
//! log moved. A browser authenticates with a session cookie (see [`session`]); every post
//! carries the session's CSRF secret and must come from this origin.

pub mod board;
mod charts;
mod forms;
mod i18n;
mod replay;
mod report;
pub mod session;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use minijinja::Environment;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::extract::Body;
use crate::{AppState, signin_links};
pub use i18n::Lang;
use session::{SESSION_COOKIE, Signed};

/// The largest form a page posts.
pub const FORM_BODY_BYTES_MAX: usize = 64 * 1024;

/// The language cookie's name (a preference, not a secret).
pub const LANG_COOKIE: &str = "gw_lang";

/// The templates, by name; `.html` names turn on HTML escaping.
const TEMPLATES: [(&str, &str); 16] = [
    ("base.html", include_str!("../../web/templates/base.html")),
    ("board_body.html", include_str!("../../web/templates/board_body.html")),
    ("board_macros.html", include_str!("../../web/templates/board_macros.html")),
    ("replay.html", include_str!("../../web/templates/replay.html")),
    ("report.html", include_str!("../../web/templates/report.html")),
    ("replay_moment.html", include_str!("../../web/templates/replay_moment.html")),
    ("signin.html", include_str!("../../web/templates/signin.html")),
    ("link.html", include_str!("../../web/templates/link.html")),
    ("board.html", include_str!("../../web/templates/board.html")),
    ("error.html", include_str!("../../web/templates/error.html")),
    ("form_macros.html", include_str!("../../web/templates/form_macros.html")),
    ("check.html", include_str!("../../web/templates/check.html")),
    ("raise.html", include_str!("../../web/templates/raise.html")),
    ("issue.html", include_str!("../../web/templates/issue.html")),
    ("issues.html", include_str!("../../web/templates/issues.html")),
    ("poster.html", include_str!("../../web/templates/poster.html")),
];

/// The assets pages name, by their plain route (each served on its hashed route).
const PAGE_ASSETS: [(&str, &str); 6] = [
    ("css", "/assets/app.css"),
    ("outbox", "/assets/outbox.js"),
    ("icon", "/assets/icon.svg"),
    ("js", "/assets/app.js"),
    ("htmx", "/assets/vendor/htmx-2.0.11.min.js"),
    ("sse", "/assets/vendor/htmx-ext-sse-2.2.4.min.js"),
];

/// What every page shares: the template engine, where the assets are served, the sessions.
#[derive(Debug)]
pub struct Web {
    templates: Environment<'static>,
    assets: HashMap<&'static str, String>,
    pub sessions: session::Sessions,
}

impl Web {
    /// Compiles the templates and looks up the assets' hashed routes; a template that does
    /// not compile is a bug, found by every test that starts a server.
    pub fn new(manifest: &memory_serve::Manifest) -> Web {
        let mut templates = Environment::new();
        // Block tags on their own lines leave no blank lines behind.
        let syntax = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        templates.set_syntax(syntax.unwrap_or_else(|error| panic!("template syntax: {error:#}")));
        templates.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            templates.add_template(name, source).unwrap_or_else(|error| panic!("template {name}: {error:#}"));
        }
        i18n::register(&mut templates);
        let assets = PAGE_ASSETS
            .iter()
            .map(|(name, route)| {
                let served = manifest.get(route).unwrap_or_else(|| panic!("asset {route} is not embedded"));
                (*name, served.to_string())
            })
            .collect();
        Web { templates, assets, sessions: session::Sessions::default() }
    }

    /// Renders template `name` with `context` plus what every page needs.
    pub fn render(&self, name: &str, page: &PageContext, context: impl Serialize) -> Result<Html<String>, WebError> {
        let template = self.templates.get_template(name).map_err(|error| WebError::internal(&error))?;
        let rendered = template
            .render(minijinja::context! { page => Serde(page), assets => Serde(&self.assets), ..minijinja::Value::from(Serde(&context)) })
            .map_err(|error| WebError::internal(&error))?;
        Ok(Html(rendered))
    }
}

/// The embedded assets, served with ETags, brotli or gzip, and cache headers (hashed routes
/// are immutable). Compressed in debug builds too (memory-serve leaves that to release
/// builds by default), so that tests see what a release serves.
pub fn assets() -> memory_serve::MemoryServe {
    memory_serve::load!().index_file(None).enable_hashed_routes(true).enable_brotli(true).enable_gzip(true)
}

/// The dashboard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(board::page))
        .route("/board", get(board::fragment))
        .route("/live/board", get(board::live))
        .route("/gates/{checkpoint_id}/check", get(forms::check_form).post(forms::record_check))
        .route("/gates/{checkpoint_id}/issue", get(forms::raise_form).post(forms::raise))
        .route("/gates/{checkpoint_id}/poster", get(forms::poster))
        .route("/issues", get(forms::issues_page))
        .route("/issues/{issue_id}", get(forms::issue_page))
        .route("/issues/{issue_id}/{step}", post(forms::issue_step))
        .route("/report", get(report::page))
        .route("/replay", get(replay::pick))
        .route("/days/{day}/replay", get(replay::page))
        .route("/signin", get(signin_page).post(signin))
        .route("/signin/link/{code}", get(link_page).post(link_signin))
        .route("/signout", post(signout))
        .route("/lang/{lang}", get(set_lang))
        // Browsers ask for it whatever the page says.
        .route("/favicon.ico", get(|| async { Redirect::permanent("/assets/icon.svg") }))
}

/// What a page knows of its request: the language, who is signed in, the CSRF secret.
#[derive(Clone, Debug, Serialize)]
pub struct PageContext {
    pub lang: Lang,
    pub csrf: Option<String>,
    pub user: Option<UserView>,
    /// The path and query of this page (where the language links come back to).
    pub here: String,
}

/// Who is signed in, as a page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct UserView {
    pub actor: String,
    pub role: crate::auth::Role,
}

/// The language of a request: the cookie's choice, else the browser's first choice.
fn lang_of(headers: &HeaderMap, jar: &CookieJar) -> Lang {
    jar.get(LANG_COOKIE).and_then(|cookie| Lang::from_code(cookie.value())).unwrap_or_else(|| {
        Lang::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
    })
}

fn here_of(parts: &Parts) -> String {
    parts.uri.path_and_query().map_or_else(|| "/".to_string(), |path| path.as_str().to_string())
}

/// A page's request, signed in or not.
#[derive(Debug)]
pub struct Visitor {
    pub page: PageContext,
    pub signed: Option<Signed>,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Visitor, WebError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let lang = lang_of(&parts.headers, &jar);
        let signed = jar
            .get(SESSION_COOKIE)
            .and_then(|cookie| state.web.sessions.get(cookie.value()))
            .map(|signed| state.tokens.is_live(&signed.principal.token_id).map(|live| (signed, live)))
            .transpose()?
            // A revoked token ends its sessions at their next request.
            .and_then(|(signed, live)| {
                if !live {
                    state.web.sessions.end(&signed.key);
                }
                live.then_some(signed)
            });
        let page = PageContext {
            lang,
            csrf: signed.as_ref().map(|signed| signed.csrf.clone()),
            user: signed
                .as_ref()
                .map(|signed| UserView { actor: signed.principal.actor.to_string(), role: signed.principal.role }),
            here: here_of(parts),
        };
        Ok(Visitor { page, signed })
    }
}

/// A signed-in person's request; anyone else is sent to sign in (scripts are told where).
#[derive(Debug)]
pub struct Person {
    pub page: PageContext,
    pub principal: Principal,
    pub signed: Signed,
}

impl FromRequestParts<AppState> for Person {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Person, WebError> {
        let visitor = Visitor::from_request_parts(parts, state).await?;
        match visitor.signed {
            Some(signed) => Ok(Person { page: visitor.page, principal: signed.principal.clone(), signed }),
            // htmx and the outbox's requests (`x-gridwatch-script`) get a 401 they can act on,
            // not a redirect their `fetch` would follow to a 200 sign-in page.
            None => Err(WebError::SignIn {
                next: visitor.page.here,
                script: parts.headers.contains_key("hx-request") || parts.headers.contains_key("x-gridwatch-script"),
            }),
        }
    }
}

/// Whether a post comes from this server's own pages: not marked cross-site by the
/// browser, and its `Origin` (when sent) naming this host.
fn same_origin(headers: &HeaderMap) -> bool {
    if headers.get("sec-fetch-site").is_some_and(|site| site.as_bytes() == b"cross-site") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    is_this_host(headers, after_scheme(origin))
}

/// What a URL header value names after its scheme (`host[:port][/path]`).
fn after_scheme(value: &HeaderValue) -> Option<&str> {
    value.to_str().ok().and_then(|url| url.split_once("://")).map(|(_, rest)| rest)
}

/// Whether `named` is exactly this request's `Host`.
fn is_this_host(headers: &HeaderMap, named: Option<&str>) -> bool {
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok());
    matches!((named, host), (Some(named), Some(host)) if named == host)
}

/// Checks a signed-in post: same origin and the session's CSRF secret (a form field or the
/// `X-CSRF-Token` header of script requests).
pub fn check_post(person: &Person, headers: &HeaderMap, form_csrf: Option<&str>) -> Result<(), WebError> {
    let given = form_csrf.or_else(|| headers.get("x-csrf-token").and_then(|value| value.to_str().ok()));
    if !same_origin(headers) || !given.is_some_and(|given| session::csrf_matches(&person.signed, given)) {
        return Err(WebError::Forbidden(person.page.lang.pick(
            "This form has expired or did not come from this site: reload the page and try again.",
            "表单已过期或并非来自本站：请刷新页面后重试。",
        )));
    }
    Ok(())
}

/// Whether the browser reached this server over TLS (itself or through a proxy that says so).
pub(crate) fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("proto=https"));
    forwarded_https || forwarded
}

/// The session cookie: HttpOnly, SameSite=Strict, `Secure` over TLS.
fn session_cookie(value: String, headers: &HeaderMap) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_tls(headers))
        .path("/")
        .build()
}

/// Whether a request names this host as where it comes from: its `Origin`, or (from a
/// browser that sends none) its `Referer`.
fn names_this_origin(headers: &HeaderMap) -> bool {
    let from = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER));
    let from_host = from.and_then(after_scheme).map(|rest| rest.split('/').next().unwrap_or(rest));
    is_this_host(headers, from_host)
}

/// A sign-in (by token or by link) must come from this site's own page: it has no session
/// secret yet, so the origin is its whole guard against a cross-site post, and one that
/// names no origin at all (neither `Origin` nor `Referer`) is refused too (a login CSRF
/// would sign the victim in as the attacker).
fn signin_from_here(headers: &HeaderMap, lang: Lang) -> Result<(), WebError> {
    if same_origin(headers) && names_this_origin(headers) {
        Ok(())
    } else {
        Err(WebError::Forbidden(lang.pick("Sign in from this site's own page.", "请从本站的登录页面登录。")))
    }
}

/// Starts a session for `principal`: its cookie, and on to `next`.
fn start_session(
    state: &AppState,
    principal: Principal,
    headers: &HeaderMap,
    jar: CookieJar,
    next: &str,
) -> Result<Response, WebError> {
    let id = state.web.sessions.create(principal).map_err(|error| WebError::internal(&error))?;
    Ok((jar.add(session_cookie(id, headers)), Redirect::to(next)).into_response())
}

/// A path on this server to go to after signing in; anything else goes to the board.
fn local_path(next: Option<&str>) -> String {
    match next {
        // No control characters or spaces either: browsers drop tabs and newlines from a URL,
        // so `/\t/evil.example` would be `//evil.example` to them.
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && !next.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            next.to_string()
        }
        _ => "/".to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct NextParam {
    next: Option<String>,
}

#[derive(Serialize)]
struct SigninContext<'a> {
    next: &'a str,
    error: Option<&'a str>,
}

async fn signin_page(
    State(state): State<AppState>,
    visitor: Visitor,
    axum::extract::Query(params): axum::extract::Query<NextParam>,
) -> Result<Response, WebError> {
    let next = local_path(params.next.as_deref());
    if visitor.signed.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(state.web.render("signin.html", &visitor.page, SigninContext { next: &next, error: None })?.into_response())
}

#[derive(Debug, Deserialize)]
struct SigninForm {
    token: String,
    next: Option<String>,
}

async fn signin(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    jar: CookieJar,
    Body(body): Body,
) -> Result<Response, WebError> {
    signin_from_here(&headers, visitor.page.lang)?;
    let form: SigninForm = serde_urlencoded::from_bytes(&body).map_err(|_| {
        WebError::BadRequest(visitor.page.lang.pick("The sign-in form was not complete.", "登录表单不完整。"))
    })?;
    let next = local_path(form.next.as_deref());
    let Some(principal) = state.tokens.authenticate(form.token.trim())? else {
        let error = visitor.page.lang.pick(
            "That token is not valid (or was revoked). Check it and paste it again.",
            "该令牌无效（或已被吊销）。请核对后重新粘贴。",
        );
        let page = state.web.render("signin.html", &visitor.page, SigninContext { next: &next, error: Some(error) })?;
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    tracing::info!(token_id = %principal.token_id, role = ?principal.role, "signed in to the dashboard");
    start_session(&state, principal, &headers, jar, &next)
}

/// `GET /signin/link/{code}`: asks to confirm (a link previewer that fetches the link must
/// not spend it); nothing is used yet.
async fn link_page(
    State(state): State<AppState>,
    visitor: Visitor,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Result<Response, WebError> {
    let page = state.web.render("link.html", &visitor.page, minijinja::context! { code => code, error => () })?;
    Ok(page.into_response())
}

/// `POST /signin/link/{code}`: spends the link (durably, first) and starts a session as its
/// token's holder.
async fn link_signin(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    jar: CookieJar,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Result<Response, WebError> {
    let lang = visitor.page.lang;
    signin_from_here(&headers, lang)?;
    let (links, tokens) = (state.links.clone(), state.tokens.clone());
    // The link is spent only when its token is live (and can be checked).
    let used = tokio::task::spawn_blocking(move || {
        links.use_once_if(&code, events_schema::Timestamp::now(), |token_id| match tokens.principal_of(token_id) {
            Ok(Some(principal)) => Ok(principal),
            Ok(None) => Err(None),
            Err(unavailable) => Err(Some(unavailable)),
        })
    })
    .await
    .map_err(|error| WebError::internal(&error))?
    .map_err(|error| WebError::internal(&error))?;
    let refused = |en, zh| -> Result<Response, WebError> {
        let page = state.web.render(
            "link.html",
            &visitor.page,
            minijinja::context! { code => "", error => lang.pick(en, zh) },
        )?;
        Ok((StatusCode::UNAUTHORIZED, page).into_response())
    };
    let principal = match used {
        Ok(Ok(principal)) => principal,
        Ok(Err(Some(unavailable))) => return Err(unavailable.into()),
        Ok(Err(None)) => return refused("The token of this link was revoked.", "该链接对应的令牌已被吊销。"),
        Err(signin_links::LinkRefused::Used) => {
            return refused("This link was used already: ask for a new one.", "该链接已被使用：请索取新链接。");
        }
        Err(signin_links::LinkRefused::Expired) => {
            return refused("This link has expired: ask for a new one.", "该链接已过期：请索取新链接。");
        }
        Err(signin_links::LinkRefused::Unknown) => return refused("This link is not valid.", "该链接无效。"),
    };
    tracing::info!(token_id = %principal.token_id, role = ?principal.role, "signed in to the dashboard with a one-time link");
    start_session(&state, principal, &headers, jar, "/")
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn signout(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    jar: CookieJar,
    Body(body): Body,
) -> Result<Response, WebError> {
    let form: CsrfForm = serde_urlencoded::from_bytes(&body).unwrap_or(CsrfForm { csrf: None });
    check_post(&person, &headers, form.csrf.as_deref())?;
    // The live board of this session sees it gone within a second and ends.
    state.web.sessions.end(&person.signed.key);
    tracing::info!(token_id = %person.principal.token_id, "signed out of the dashboard");
    Ok((jar.remove(Cookie::build(SESSION_COOKIE).path("/")), Redirect::to("/signin")).into_response())
}

async fn set_lang(
    axum::extract::Path(code): axum::extract::Path<String>,
    axum::extract::Query(params): axum::extract::Query<NextParam>,
    jar: CookieJar,
) -> Response {
    let next = local_path(params.next.as_deref());
    let Some(lang) = Lang::from_code(&code) else { return Redirect::to(&next).into_response() };
    let cookie = Cookie::build((LANG_COOKIE, lang.code())).path("/").same_site(SameSite::Lax).permanent().build();
    (jar.add(cookie), Redirect::to(&next)).into_response()
}

/// Why a page could not be shown, as a page (or, for scripts, a redirect they follow).
#[derive(Debug)]
pub enum WebError {
    /// Not signed in: to the sign-in page, then back to `next`.
    SignIn {
        next: String,
        script: bool,
    },
    Forbidden(&'static str),
    NotFound(&'static str),
    BadRequest(&'static str),
    /// A failure of the server; its detail goes to the log, not to the page.
    Internal,
    /// No token can be checked on this node now (logged when seen): try again shortly.
    TokensUnavailable,
}

impl From<crate::auth::TokensUnavailable> for WebError {
    fn from(_: crate::auth::TokensUnavailable) -> WebError {
        WebError::TokensUnavailable
    }
}

impl WebError {
    pub fn internal(error: &dyn std::fmt::Display) -> WebError {
        tracing::error!(%error, "a dashboard page failed");
        WebError::Internal
    }
}

impl From<store::StoreError> for WebError {
    fn from(error: store::StoreError) -> WebError {
        WebError::internal(&error)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            WebError::SignIn { next, script } => {
                let location = format!("/signin?next={}", urlencoding_path(&next));
                if script {
                    // htmx follows `HX-Redirect` with a full page load.
                    let mut response = StatusCode::UNAUTHORIZED.into_response();
                    if let Ok(value) = HeaderValue::from_str(&location) {
                        response.headers_mut().insert("hx-redirect", value);
                    }
                    return response;
                }
                return Redirect::to(&location).into_response();
            }
            WebError::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            WebError::NotFound(message) => (StatusCode::NOT_FOUND, message),
            WebError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            WebError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "The server failed. 服务器出错。"),
            WebError::TokensUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "This server cannot check sign-ins right now. Try again in a moment. 此服务器暂时无法核对登录。请稍后再试。",
            ),
        };
        // A minimal page of its own: an error page must not fail to render.
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{code}</title></head><body><main><h1>{code}</h1><p>{message}</p><p><a href=\"/\">gridwatch</a></p></main></body></html>",
            code = status.as_u16(),
            message = minijinja::HtmlEscape(message),
        );
        (status, Html(body)).into_response()
    }
}

/// `text` with the characters a query value may not hold percent-encoded.
fn urlencoding_path(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|encoded| encoded.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/board?site=a")), "/board?site=a");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(Some("/\t/evil.example")), "/");
        assert_eq!(local_path(Some("/\n/evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn posts_from_another_origin_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers), "no Origin: a same-origin form of an older browser");
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
    }

    #[test]
    fn a_sign_in_must_name_this_origin() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(signin_from_here(&headers, Lang::En).is_err(), "no Origin, no Referer");
        headers.insert(header::REFERER, HeaderValue::from_static("http://127.0.0.1:8080/signin?next=/"));
        assert!(signin_from_here(&headers, Lang::En).is_ok(), "an older browser's Referer");
        headers.insert(header::REFERER, HeaderValue::from_static("http://evil.example/127.0.0.1:8080"));
        assert!(signin_from_here(&headers, Lang::En).is_err());
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(signin_from_here(&headers, Lang::En).is_ok(), "the Origin decides when there is one");
    }

    #[test]
    fn the_cookie_is_secure_behind_a_tls_proxy() {
        let mut headers = HeaderMap::new();
        assert!(!session_cookie("x".into(), &headers).secure().unwrap_or(false));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let cookie = session_cookie("x".into(), &headers);
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
    }

    #[test]
    fn the_next_page_is_encoded_into_the_sign_in_link() {
        assert_eq!(urlencoding_path("/board?site=a&state=overdue"), "%2Fboard%3Fsite%3Da%26state%3Doverdue");
    }
}
