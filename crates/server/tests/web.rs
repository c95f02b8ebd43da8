//! The dashboard in process: signing in and out, the session cookie's flags, cross-site
//! posts refused, roles and sites on the board, the board's words in both languages, the
//! live board (and its end with the session), and the embedded assets' caching.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use futures::StreamExt;
use serde_json::json;
use server::{AppState, Role, ServerConfig, TokenFile};
use service::Service;
use store::DynStore;
use store::memory::MemoryStore;
use tower::ServiceExt;

const ORIGIN: &str = "http://gridwatch.test";
const HOST: &str = "gridwatch.test";

struct Web {
    router: Router,
    admin: String,
    supervisor: String,
    /// Field staff at site-a.
    field_a: String,
    _dir: tempfile::TempDir,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get("location").and_then(|value| value.to_str().ok()).unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|value| value.to_str().unwrap().to_string()).collect()
    }

    /// The value of the first `name="…"` attribute after `marker`.
    fn attribute_after(&self, marker: &str, name: &str) -> String {
        let from = self.text.find(marker).unwrap_or_else(|| panic!("no {marker} in {}", self.text));
        let rest = &self.text[from..];
        let start = rest.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let value = &rest[start..start + rest[start..].find('"').unwrap()];
        // The engine escapes `/` too; entities decoded as a browser does.
        value
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }
}

async fn web() -> Web {
    web_with(ServerConfig::default()).await
}

async fn web_with(config: ServerConfig) -> Web {
    web_with_tokens(config, |dir| Arc::new(TokenFile::new(dir))).await
}

/// With the tokens `tokens` makes for the data directory it is given.
async fn web_with_tokens(config: ServerConfig, tokens: impl FnOnce(&std::path::Path) -> Arc<TokenFile>) -> Web {
    let dir = tempfile::tempdir().unwrap();
    let store = DynStore::new("memory", MemoryStore::new());
    let service = Arc::new(Service::open(store, jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()).await.unwrap());
    let tokens = tokens(dir.path());
    let make = |role, sites: &[&str], actor: &str| {
        let sites = sites.iter().map(|site| events_schema::EntityId::new(*site).unwrap()).collect();
        tokens.create(role, sites, Some(events_schema::EntityId::new(actor).unwrap())).unwrap().token
    };
    let admin = make(Role::Admin, &[], "admin-1");
    let supervisor = make(Role::Supervisor, &[], "cadre-1");
    let field_a = make(Role::Field, &["site-a"], "guard-1");
    let state = AppState::new(service, tokens.clone(), config);
    let web = Web { router: server::router(state), admin, supervisor, field_a, _dir: dir };
    for (command, data) in [
        ("register-community", json!({"community_id": "minxin", "name": "Minxin"})),
        ("register-grid", json!({"grid_id": "grid-1", "community_id": "minxin", "name": "Grid 1"})),
        (
            "register-site",
            json!({"site_id": "site-a", "grid_id": "grid-1", "name": "Longwu", "kind": "residential_compound"}),
        ),
        (
            "register-site",
            json!({"site_id": "site-b", "grid_id": "grid-1", "name": "Feicui", "kind": "residential_compound"}),
        ),
        ("register-checkpoint", json!({"checkpoint_id": "gate-a", "site_id": "site-a", "name": "Longwu north gate"})),
        ("register-checkpoint", json!({"checkpoint_id": "gate-b", "site_id": "site-b", "name": "Feicui main gate"})),
        ("register-staff", json!({"staff_id": "guard-1", "display_name": "Guard Wu", "role": "guard"})),
        ("register-staff", json!({"staff_id": "cadre-1", "display_name": "Cadre Zhou", "role": "deployed_cadre"})),
    ] {
        let admin = web.admin.clone();
        web.command(&admin, command, data).await;
    }
    web
}

impl Web {
    async fn send(&self, request: Request<Body>) -> Page {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Page { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn command(&self, token: &str, command: &str, data: serde_json::Value) -> u64 {
        let body = serde_json::to_vec(&json!({"command": command, "data": data})).unwrap();
        let request = Request::post("/api/v1/commands")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let page = self.send(request).await;
        assert_eq!(page.status, StatusCode::CREATED, "{command}: {}", page.text);
        let answer: serde_json::Value = serde_json::from_str(&page.text).unwrap();
        answer["events"].as_array().unwrap().last().unwrap()["global_position"].as_u64().unwrap()
    }

    async fn get(&self, uri: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> Page {
        let mut request = Request::get(uri).header("host", HOST);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, cookie: Option<&str>, origin: &str, form: &[(&str, &str)]) -> Page {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("host", HOST)
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        self.send(request.body(Body::from(serde_urlencoded::to_string(form).unwrap())).unwrap()).await
    }

    /// Signs in with `token`: the `name=value` of the session cookie.
    async fn sign_in(&self, token: &str) -> String {
        let page = self.post_form("/signin", None, ORIGIN, &[("token", token), ("next", "/")]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
        let cookie = page.set_cookies().into_iter().find(|cookie| cookie.starts_with("gw_session=")).unwrap();
        cookie.split(';').next().unwrap().to_string()
    }
}

#[tokio::test]
async fn a_visitor_is_sent_to_sign_in_and_back() {
    let web = web().await;
    let page = web.get("/?site=site-a", None, &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/signin?next=%2F%3Fsite%3Dsite-a");
    // The board's own refresh (htmx) is told where to go instead of getting the page.
    let page = web.get("/board", None, &[("hx-request", "true")]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert_eq!(page.headers["hx-redirect"], "/signin?next=%2Fboard");
    let page = web.get("/signin?next=%2F%3Fsite%3Dsite-a", None, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.attribute_after("name=\"next\"", "value"), "/?site=site-a");
    let page = web.post_form("/signin", None, ORIGIN, &[("token", &web.supervisor), ("next", "/?site=site-a")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/?site=site-a");
    // Never to another site after signing in.
    let page = web.post_form("/signin", None, ORIGIN, &[("token", &web.supervisor), ("next", "//evil.example/")]).await;
    assert_eq!(page.location(), "/");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_secure_behind_tls() {
    let web = web().await;
    let page = web.post_form("/signin", None, ORIGIN, &[("token", &web.supervisor)]).await;
    let cookie = page.set_cookies().into_iter().find(|cookie| cookie.starts_with("gw_session=")).unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(&web.supervisor), "the token never goes into the cookie");
    let request = Request::post("/signin")
        .header("host", HOST)
        .header("origin", "https://gridwatch.test")
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string([("token", &web.supervisor)]).unwrap()))
        .unwrap();
    let page = web.send(request).await;
    let cookie = page.set_cookies().into_iter().find(|cookie| cookie.starts_with("gw_session=")).unwrap();
    assert!(cookie.contains("Secure"), "behind a TLS proxy: {cookie}");
}

#[tokio::test]
async fn a_bad_token_or_a_cross_site_sign_in_starts_no_session() {
    let web = web().await;
    let page = web.post_form("/signin", None, ORIGIN, &[("token", "gw_000000000000_00")]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.text.contains("That token is not valid"), "{}", page.text);
    assert!(page.text.contains("aria-invalid=\"true\""), "the message is next to the field");
    assert!(page.set_cookies().iter().all(|cookie| !cookie.starts_with("gw_session=")));
    let page = web.post_form("/signin", None, "http://evil.example", &[("token", &web.supervisor)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.set_cookies().is_empty());
}

#[tokio::test]
async fn the_board_groups_gates_and_shows_states_in_words_in_both_languages() {
    let web = web().await;
    let cookie = web.sign_in(&web.supervisor).await;
    web.command(
        &web.supervisor,
        "record-patrol-check",
        json!({"checkpoint_id": "gate-a", "staff_id": "guard-1", "result": "ok"}),
    )
    .await;
    web.command(
        &web.supervisor,
        "raise-issue",
        json!({"issue_id": "issue-1", "checkpoint_id": "gate-b", "raised_by": "cadre-1", "category": "courier_congestion",
               "severity": "high", "summary": "tricycles crowd the gate"}),
    )
    .await;
    let page = web.get("/", Some(&cookie), &[("accept-language", "en-GB,en;q=0.9")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    for expected in
        ["<h2>Minxin</h2>", "<h3>Grid 1</h3>", "<h4>Longwu</h4>", "<h4>Feicui</h4>", "Longwu north gate", "Guard Wu"]
    {
        assert!(page.text.contains(expected), "{expected} in {}", page.text);
    }
    assert_eq!(page.attribute_after("data-checkpoint=\"gate-b\"", "data-state"), "issue");
    assert!(page.text.contains("Open issue · high"), "{}", page.text);
    assert!(page.text.contains("courier congestion: tricycles crowd the gate"), "{}", page.text);
    assert_eq!(page.attribute_after("data-checkpoint=\"gate-a\"", "data-state"), "ok");
    // The browser's first choice decides the language ...
    let page = web.get("/", Some(&cookie), &[("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")]).await;
    assert!(page.text.contains("<html lang=\"zh-CN\">"));
    assert!(page.text.contains("有未结问题 · 高"), "{}", page.text);
    assert!(page.text.contains("快递车辆拥堵"), "{}", page.text);
    assert!(!page.text.contains("Open issue"), "no English left on a Chinese page");
    // ... until a choice is made, and remembered.
    let page = web.get("/lang/en?next=%2F", Some(&cookie), &[]).await;
    assert_eq!(page.location(), "/");
    let lang = page.set_cookies().into_iter().find(|cookie| cookie.starts_with("gw_lang=en")).unwrap();
    let both = format!("{cookie}; {}", lang.split(';').next().unwrap());
    let page = web.get("/", Some(&both), &[("accept-language", "zh-CN")]).await;
    assert!(page.text.contains("Open issue · high"));
    // Filters by state and by site.
    let page = web.get("/?state=issue", Some(&cookie), &[]).await;
    assert!(
        page.text.contains("data-checkpoint=\"gate-b\"") && !page.text.contains("data-checkpoint=\"gate-a\""),
        "{}",
        page.text
    );
    let page = web.get("/?site=site-a&state=", Some(&cookie), &[]).await;
    assert!(page.text.contains("data-checkpoint=\"gate-a\"") && !page.text.contains("data-checkpoint=\"gate-b\""));
    let page = web.get("/?state=purple", Some(&cookie), &[]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn field_staff_see_their_sites_only() {
    let web = web().await;
    let cookie = web.sign_in(&web.field_a).await;
    let page = web.get("/", Some(&cookie), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("data-checkpoint=\"gate-a\""), "{}", page.text);
    assert!(!page.text.contains("data-checkpoint=\"gate-b\"") && !page.text.contains("Feicui"), "{}", page.text);
    let page = web.get("/?site=site-b", Some(&cookie), &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signing_out_needs_the_session_secret_and_ends_the_session() {
    let web = web().await;
    let cookie = web.sign_in(&web.supervisor).await;
    let board = web.get("/", Some(&cookie), &[]).await;
    let csrf = board.attribute_after("name=\"_csrf\"", "value");
    // Without the secret, or from another origin: refused, still signed in.
    let page = web.post_form("/signout", Some(&cookie), ORIGIN, &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = web.post_form("/signout", Some(&cookie), "http://evil.example", &[("_csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(web.get("/", Some(&cookie), &[]).await.status, StatusCode::OK);
    let page = web.post_form("/signout", Some(&cookie), ORIGIN, &[("_csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.set_cookies().iter().any(|cookie| cookie.starts_with("gw_session=;")), "{:?}", page.set_cookies());
    // The old cookie no longer works.
    assert_eq!(web.get("/", Some(&cookie), &[]).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions() {
    let web = web().await;
    let cookie = web.sign_in(&web.supervisor).await;
    assert_eq!(web.get("/", Some(&cookie), &[]).await.status, StatusCode::OK);
    let token_id = web.supervisor.split('_').nth(1).unwrap().to_string();
    let request = Request::delete(format!("/api/v1/tokens/{token_id}"))
        .header("authorization", format!("Bearer {}", web.admin))
        .body(Body::empty())
        .unwrap();
    assert_eq!(web.send(request).await.status, StatusCode::NO_CONTENT);
    assert_eq!(web.get("/", Some(&cookie), &[]).await.status, StatusCode::SEE_OTHER);
}

/// On a cluster node that cannot prove its shared tokens are current, a signed-in person gets a
/// 503 page that says to try again (not the sign-in page), and so does signing in; the session
/// is not ended by it, and works again once the node has proven its tokens current.
#[tokio::test]
async fn a_node_that_cannot_check_tokens_answers_503_pages_and_keeps_the_sessions() {
    let shared = Arc::new(common::SharedTokensOfOneNode::default());
    let of_node = shared.clone();
    let web = web_with_tokens(ServerConfig::default(), move |dir| of_node.node(dir)).await;
    let cookie = web.sign_in(&web.supervisor).await;
    assert_eq!(web.get("/", Some(&cookie), &[]).await.status, StatusCode::OK);
    shared.proven(server::auth::SHARED_TOKENS_UNCONFIRMED_MAX + std::time::Duration::from_secs(1));
    let page = web.get("/", Some(&cookie), &[]).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.text);
    assert!(page.text.contains("Try again in a moment"), "{}", page.text);
    let signin = web.post_form("/signin", None, ORIGIN, &[("token", &web.admin), ("next", "/")]).await;
    assert_eq!(signin.status, StatusCode::SERVICE_UNAVAILABLE, "{}", signin.text);
    assert!(signin.set_cookies().is_empty(), "no session is started");
    shared.proven(std::time::Duration::from_secs(1));
    assert_eq!(web.get("/", Some(&cookie), &[]).await.status, StatusCode::OK, "the session was kept");
}

/// The next server-sent message's `(event, id)`, within a few seconds.
async fn next_message(
    body: &mut (impl futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
) -> Option<(String, String)> {
    let mut text = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next()).await.ok()??.ok()?;
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let message: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                message
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{name}:")).map(|value| value.trim().to_string()))
            };
            if let (Some(event), Some(id)) = (field("event"), field("id")) {
                return Some((event, id));
            }
        }
    }
}

#[tokio::test]
async fn the_live_board_tells_of_changes_and_ends_with_the_session() {
    let web = web().await;
    let cookie = web.sign_in(&web.supervisor).await;
    let board = web.get("/", Some(&cookie), &[]).await;
    let position = board.attribute_after("id=\"board\"", "data-position");
    let request = Request::get(format!("/live/board?after={position}"))
        .header("host", HOST)
        .header("cookie", &cookie)
        .body(Body::empty())
        .unwrap();
    let response = web.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body().into_data_stream();
    let recorded = web
        .command(
            &web.supervisor,
            "record-patrol-check",
            json!({"checkpoint_id": "gate-a", "staff_id": "guard-1", "result": "ok"}),
        )
        .await;
    assert_eq!(next_message(&mut body).await, Some(("board".to_string(), recorded.to_string())));
    // A page that reconnects after missing events hears of them at once, up to the last.
    let request =
        Request::get("/live/board?after=1").header("host", HOST).header("cookie", &cookie).body(Body::empty()).unwrap();
    let mut resumed = web.router.clone().oneshot(request).await.unwrap().into_body().into_data_stream();
    let first = next_message(&mut resumed).await.unwrap();
    assert_eq!(first.0, "board");
    assert!(first.1.parse::<u64>().unwrap() > 1, "{first:?}");
    let mut last = first.1;
    while last != recorded.to_string() {
        last = next_message(&mut resumed).await.expect("the last missed event is told within seconds").1;
    }
    // Signing out ends the feed.
    let csrf = board.attribute_after("name=\"_csrf\"", "value");
    assert_eq!(
        web.post_form("/signout", Some(&cookie), ORIGIN, &[("_csrf", &csrf)]).await.status,
        StatusCode::SEE_OTHER
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the live board ends within seconds of signing out");
    // Its reconnection is told 204: an EventSource stops trying on that.
    let request =
        Request::get("/live/board").header("host", HOST).header("cookie", &cookie).body(Body::empty()).unwrap();
    assert_eq!(web.send(request).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_field_live_board_hears_nothing_of_other_sites() {
    let web = web().await;
    let cookie = web.sign_in(&web.field_a).await;
    let request =
        Request::get("/live/board").header("host", HOST).header("cookie", &cookie).body(Body::empty()).unwrap();
    let mut body = web.router.clone().oneshot(request).await.unwrap().into_body().into_data_stream();
    web.command(
        &web.supervisor,
        "record-patrol-check",
        json!({"checkpoint_id": "gate-b", "staff_id": "guard-1", "result": "ok"}),
    )
    .await;
    let own = web
        .command(
            &web.supervisor,
            "record-patrol-check",
            json!({"checkpoint_id": "gate-a", "staff_id": "guard-1", "result": "ok"}),
        )
        .await;
    // The first message names its own site's event, not the other site's before it.
    assert_eq!(next_message(&mut body).await, Some(("board".to_string(), own.to_string())));
}

#[tokio::test]
async fn assets_are_embedded_compressed_and_cached_by_etag() {
    let web = web().await;
    let cookie = web.sign_in(&web.supervisor).await;
    let board = web.get("/", Some(&cookie), &[]).await;
    let css = board.attribute_after("rel=\"stylesheet\"", "href");
    assert!(
        css.starts_with("/assets/app.") && css.ends_with(".css") && css != "/assets/app.css",
        "a hashed route: {css}"
    );
    let page = web.get(&css, None, &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.headers);
    assert_eq!(page.headers.get("content-encoding").map(|v| v.to_str().unwrap()), Some("br"), "{:?}", page.headers);
    assert!(page.headers["cache-control"].to_str().unwrap().contains("immutable"));
    let etag = page.headers["etag"].to_str().unwrap().to_string();
    let page = web.get(&css, None, &[("if-none-match", &etag)]).await;
    assert_eq!(page.status, StatusCode::NOT_MODIFIED);
    // The service worker, at the root so that it may serve the gates' forms offline.
    let worker = web.get("/sw.js", None, &[]).await;
    assert_eq!(worker.status, StatusCode::OK);
    assert!(worker.headers["content-type"].to_str().unwrap().contains("javascript"));
    assert!(worker.text.contains("importScripts(\"/assets/outbox.js\")"));
    assert_eq!(web.get("/assets/outbox.js", None, &[]).await.status, StatusCode::OK);
    // Pages are never framed and run only this server's scripts.
    let policy = board.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
}

/// The log's head position (what a form that records nothing must leave as it was).
async fn head(web: &Web) -> u64 {
    let request = Request::get("/api/v1/events?from=1&limit=1000")
        .header("authorization", format!("Bearer {}", web.admin))
        .body(Body::empty())
        .unwrap();
    let page = web.send(request).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let events: Vec<serde_json::Value> = serde_json::from_str(&page.text).unwrap();
    events.last().map_or(0, |event| event["global_position"].as_u64().unwrap())
}

#[tokio::test]
async fn a_patrol_check_through_the_form_is_recorded_once_and_shows_on_the_board() {
    let web = web().await;
    let cookie = web.sign_in(&web.field_a).await;
    let form = web.get("/gates/gate-a/check", Some(&cookie), &[]).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(form.text.contains("Longwu north gate") && form.text.contains("Thermometer working"), "{}", form.text);
    let csrf = form.attribute_after("name=\"_csrf\"", "value");
    let event_id = form.attribute_after("name=\"event_id\"", "value");
    let before = head(&web).await;
    let fields = [
        ("_csrf", csrf.as_str()),
        ("event_id", event_id.as_str()),
        ("occurred_at", ""),
        ("staff_present", "yes"),
        ("thermometer_working", "no"),
        ("result", "issue_found"),
        ("weather", "rain"),
        ("note", "thermometer battery flat"),
    ];
    let page = web.post_form("/gates/gate-a/check", Some(&cookie), ORIGIN, &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    assert_eq!(page.location(), format!("/gates/gate-a/check?done={event_id}"));
    assert_eq!(head(&web).await, before + 1);
    // Sent again (a double tap, a retry after a lost answer): recorded once.
    let page = web.post_form("/gates/gate-a/check", Some(&cookie), ORIGIN, &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    assert_eq!(head(&web).await, before + 1);
    let done = web.get(&format!("/gates/gate-a/check?done={event_id}"), Some(&cookie), &[]).await;
    assert!(done.text.contains("Recorded. Thank you."));
    let board = web.get("/", Some(&cookie), &[]).await;
    assert!(board.text.contains("Guard Wu:") && board.text.contains("issue found"), "{}", board.text);
}

#[tokio::test]
async fn bad_input_on_a_form_is_told_next_to_the_field_and_records_nothing() {
    let web = web().await;
    let cookie = web.sign_in(&web.field_a).await;
    let form = web.get("/gates/gate-a/check", Some(&cookie), &[]).await;
    let csrf = form.attribute_after("name=\"_csrf\"", "value");
    let before = head(&web).await;
    let page = web
        .post_form(
            "/gates/gate-a/check",
            Some(&cookie),
            ORIGIN,
            &[("_csrf", &csrf), ("staff_present", "maybe"), ("weather", "snow"), ("note", "kept")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.text);
    for (field, message) in [
        ("staff_present", "Choose yes, no, or leave it unchecked."),
        ("result", "Say whether all was in order."),
        ("weather", "Choose the weather from the list."),
    ] {
        let at = page.text.find(&format!("id=\"{field}-error\"")).unwrap_or_else(|| panic!("{field}: {}", page.text));
        assert!(
            page.text[at..]
                .starts_with(&format!("id=\"{field}-error\" class=\"field-error\" role=\"alert\">{message}"))
        );
    }
    assert!(page.text.contains(">kept</textarea>"), "what was typed is kept");
    assert_eq!(head(&web).await, before, "nothing recorded");
    // The same in Chinese.
    let page = web
        .send(
            Request::post("/gates/gate-a/check")
                .header("host", HOST)
                .header("origin", ORIGIN)
                .header("cookie", &cookie)
                .header("accept-language", "zh-CN")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("_csrf={csrf}")))
                .unwrap(),
        )
        .await;
    assert!(page.text.contains("请选择检查结果。"), "{}", page.text);
    // Without the session's secret: refused, nothing recorded.
    let page = web.post_form("/gates/gate-a/check", Some(&cookie), ORIGIN, &[("result", "ok")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(head(&web).await, before);
}

#[tokio::test]
async fn another_sites_gate_looks_like_no_gate_to_field_staff() {
    let web = web().await;
    let cookie = web.sign_in(&web.field_a).await;
    let other = web.get("/gates/gate-b/check", Some(&cookie), &[]).await;
    let unknown = web.get("/gates/gate-zz/check", Some(&cookie), &[]).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(other.text, unknown.text);
}

#[tokio::test]
async fn an_issue_raised_on_the_phone_is_worked_to_verification_from_its_page() {
    let web = web().await;
    let field = web.sign_in(&web.field_a).await;
    let form = web.get("/gates/gate-a/issue", Some(&field), &[]).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let csrf = form.attribute_after("name=\"_csrf\"", "value");
    let event_id = form.attribute_after("name=\"event_id\"", "value");
    let raised = [
        ("_csrf", csrf.as_str()),
        ("event_id", event_id.as_str()),
        ("category", "courier_congestion"),
        ("severity", "high"),
        ("summary", "tricycles block the north gate"),
    ];
    let page = web.post_form("/gates/gate-a/issue", Some(&field), ORIGIN, &raised).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    let issue_page = page.location().to_string();
    assert!(issue_page.starts_with("/issues/issue-"), "{issue_page}");
    // A resend raises the same issue, once.
    let again = web.post_form("/gates/gate-a/issue", Some(&field), ORIGIN, &raised).await;
    assert_eq!(again.location(), issue_page);
    let page = web.get(&issue_page, Some(&field), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Raised (courier congestion, high): tricycles block the north gate"), "{}", page.text);
    let csrf_field = page.attribute_after("name=\"_csrf\"", "value");
    // An empty action is told, records nothing.
    let empty = web
        .post_form(&format!("{issue_page}/action"), Some(&field), ORIGIN, &[("_csrf", &csrf_field), ("action", " ")])
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text.contains("Say what was done."));
    let acted = web
        .post_form(
            &format!("{issue_page}/action"),
            Some(&field),
            ORIGIN,
            &[("_csrf", &csrf_field), ("action", "asked the couriers to park by the wall")],
        )
        .await;
    assert_eq!(acted.status, StatusCode::SEE_OTHER, "{}", acted.text);
    let resolved = web
        .post_form(
            &format!("{issue_page}/resolve"),
            Some(&field),
            ORIGIN,
            &[("_csrf", &csrf_field), ("resolution", "a drop-off point set up")],
        )
        .await;
    assert_eq!(resolved.status, StatusCode::SEE_OTHER, "{}", resolved.text);
    // Field staff may not verify; a supervisor may.
    let page = web.get(&issue_page, Some(&field), &[]).await;
    assert!(!page.text.contains("/verify\""), "no verify form for field staff");
    let denied = web.post_form(&format!("{issue_page}/verify"), Some(&field), ORIGIN, &[("_csrf", &csrf_field)]).await;
    assert_eq!(denied.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(denied.text.contains("Not allowed"), "{}", denied.text);
    let supervisor = web.sign_in(&web.supervisor).await;
    let page = web.get(&issue_page, Some(&supervisor), &[]).await;
    let csrf_sup = page.attribute_after("name=\"_csrf\"", "value");
    let verified =
        web.post_form(&format!("{issue_page}/verify"), Some(&supervisor), ORIGIN, &[("_csrf", &csrf_sup)]).await;
    assert_eq!(verified.status, StatusCode::SEE_OTHER, "{}", verified.text);
    let page = web.get(&issue_page, Some(&supervisor), &[]).await;
    for step in
        ["Action: asked the couriers to park by the wall", "Resolved: a drop-off point set up", "Resolution verified"]
    {
        assert!(page.text.contains(step), "{step}: {}", page.text);
    }
    assert!(page.text.contains("resolved and verified"), "{}", page.text);
}

#[tokio::test]
async fn the_replay_shows_the_board_after_each_event_of_the_day_to_those_who_may_audit() {
    let web = web().await;
    let supervisor = web.sign_in(&web.supervisor).await;
    let field = web.sign_in(&web.field_a).await;
    let today =
        projections::local_day(events_schema::Timestamp::now(), &jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    web.command(
        &web.supervisor,
        "raise-issue",
        json!({"issue_id": "issue-1", "checkpoint_id": "gate-a", "raised_by": "cadre-1", "category": "crowding",
               "severity": "medium", "summary": "a queue forms at the gate"}),
    )
    .await;
    let url = format!("/days/{today}/replay");
    assert_eq!(web.get(&url, Some(&field), &[]).await.status, StatusCode::FORBIDDEN, "field staff do not replay days");
    let page = web.get(&url, Some(&supervisor), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Not sealed yet."), "{}", page.text);
    let steps: usize = page.attribute_after("id=\"step\"", "max").parse().unwrap();
    assert!(steps >= 9, "the day's registrations and the issue: {steps}");
    // After the last event, the issue is open; at the day's start, nothing is registered.
    assert_eq!(page.attribute_after("data-checkpoint=\"gate-a\"", "data-state"), "issue");
    let start = web.get(&format!("{url}?step=0"), Some(&supervisor), &[]).await;
    assert!(!start.text.contains("data-checkpoint=\"gate-a\""), "no gate before its registration");
    assert!(start.text.contains("The day&#x27;s start, before any event."), "{}", start.text);
    let before = web.get(&format!("{url}?step={}", steps - 1), Some(&supervisor), &[]).await;
    assert_eq!(before.attribute_after("data-checkpoint=\"gate-a\"", "data-state"), "ok");
    // A step button without script (`go`) wins over the slider; htmx gets the moment alone.
    let moment = web.get(&format!("{url}?step=0&go={steps}"), Some(&supervisor), &[("hx-request", "true")]).await;
    assert!(moment.text.trim_start().starts_with("<div id=\"moment\">"), "{}", moment.text);
    assert_eq!(moment.attribute_after("data-checkpoint=\"gate-a\"", "data-state"), "issue");
    assert_eq!(web.get("/days/not-a-day/replay", Some(&supervisor), &[]).await.status, StatusCode::NOT_FOUND);
    let picked = web.get(&format!("/replay?day={today}"), Some(&supervisor), &[]).await;
    assert_eq!(picked.location(), url);
}

#[tokio::test]
async fn the_report_page_shows_the_servers_report_with_charts_and_its_text() {
    let web = web().await;
    let supervisor = web.sign_in(&web.supervisor).await;
    let field = web.sign_in(&web.field_a).await;
    web.command(
        &web.supervisor,
        "record-patrol-check",
        json!({"checkpoint_id": "gate-a", "staff_id": "guard-1", "result": "ok"}),
    )
    .await;
    assert_eq!(web.get("/report", Some(&field), &[]).await.status, StatusCode::FORBIDDEN);
    let page = web.get("/report", Some(&supervisor), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.text.matches("<svg class=\"chart\" role=\"img\"").count(), 3, "three charts");
    for title in
        ["Checks per hour against the schedule", "Issues opened and closed", "Time to first action and to resolution"]
    {
        assert!(page.text.contains(&format!("<title>{title}</title>")), "{title}");
    }
    assert!(
        page.text.contains("<article class=\"report-body\">") && page.text.contains("After-action summary"),
        "{}",
        page.text
    );
    assert!(page.text.contains("id=\"report-text\""), "the text report, for copying");
    let range = web.get("/report?day=2020-02-20&to=2020-02-19", Some(&supervisor), &[]).await;
    assert_eq!(range.status, StatusCode::BAD_REQUEST);
    let zh = web.get("/report", Some(&supervisor), &[("accept-language", "zh-CN")]).await;
    assert!(zh.text.contains("<title>每小时巡查次数与排班要求</title>"), "{}", zh.text);
}

#[tokio::test]
async fn the_issues_list_and_a_gate_poster_are_for_the_sites_one_may_see() {
    let web = web().await;
    let field = web.sign_in(&web.field_a).await;
    let supervisor = web.sign_in(&web.supervisor).await;
    for (issue, gate, severity) in [("issue-a", "gate-a", "low"), ("issue-b", "gate-b", "critical")] {
        web.command(
            &web.supervisor,
            "raise-issue",
            json!({"issue_id": issue, "checkpoint_id": gate, "raised_by": "cadre-1", "category": "equipment",
                   "severity": severity, "summary": format!("{issue} summary")}),
        )
        .await;
    }
    let all = web.get("/issues", Some(&supervisor), &[]).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let (b, a) = (all.text.find("data-issue=\"issue-b\"").unwrap(), all.text.find("data-issue=\"issue-a\"").unwrap());
    assert!(b < a, "the critical issue first");
    let own = web.get("/issues", Some(&field), &[]).await;
    assert!(own.text.contains("data-issue=\"issue-a\"") && !own.text.contains("issue-b"), "{}", own.text);
    assert_eq!(web.get("/issues/issue-b", Some(&field), &[]).await.status, StatusCode::NOT_FOUND);
    let poster = web.get("/gates/gate-a/poster", Some(&field), &[]).await;
    assert_eq!(poster.status, StatusCode::OK, "{}", poster.text);
    assert!(poster.text.contains("<svg class=\"qr\" role=\"img\""));
    assert!(poster.text.replace("&#x2f;", "/").contains("http://gridwatch.test/gates/gate-a/check"), "{}", poster.text);
    assert_eq!(web.get("/gates/gate-b/poster", Some(&field), &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_one_time_link_signs_in_once_and_only_when_confirmed() {
    let web = web().await;
    let links = server::signin_links::SigninLinks::new(web._dir.path());
    let token_id = web.field_a.split('_').nth(1).unwrap().to_string();
    let code = links.create(&token_id, 10, events_schema::Timestamp::now()).unwrap();
    let url = format!("/signin/link/{code}");
    // Fetching the link (a chat app's preview) spends nothing.
    for _ in 0..2 {
        let page = web.get(&url, None, &[]).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains(&format!("action=\"/signin/link/{code}\"")), "{}", page.text);
    }
    assert_eq!(web.post_form(&url, None, "http://evil.example", &[]).await.status, StatusCode::FORBIDDEN);
    let page = web.post_form(&url, None, ORIGIN, &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    let cookie = page.set_cookies().into_iter().find(|cookie| cookie.starts_with("gw_session=")).unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let session = cookie.split(';').next().unwrap().to_string();
    let board = web.get("/", Some(&session), &[]).await;
    assert!(board.text.contains("guard-1 · field"), "signed in as the token's holder: {}", board.text);
    let again = web.post_form(&url, None, ORIGIN, &[]).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.text.contains("This link was used already"), "{}", again.text);
    assert!(again.set_cookies().is_empty());
    let unknown = web.post_form("/signin/link/0000", None, ORIGIN, &[]).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.text.contains("This link is not valid."));
}

#[tokio::test]
async fn an_issue_page_offers_each_roles_steps_and_shows_its_corrections() {
    let web = web().await;
    let field = web.sign_in(&web.field_a).await;
    let supervisor = web.sign_in(&web.supervisor).await;
    web.command(
        &web.supervisor,
        "raise-issue",
        json!({"issue_id": "issue-x", "checkpoint_id": "gate-a", "raised_by": "cadre-1", "category": "staffing",
               "severity": "high", "summary": "no one at the gate"}),
    )
    .await;
    let post = |cookie: String, step: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let web = &web;
        async move {
            let page = web.get("/issues/issue-x", Some(&cookie), &[]).await;
            let csrf = page.attribute_after("name=\"_csrf\"", "value");
            let mut form = vec![("_csrf", csrf.as_str())];
            form.extend(fields.iter().copied());
            web.post_form(&format!("/issues/issue-x/{step}"), Some(&cookie), ORIGIN, &form).await
        }
    };
    let page = web.get("/issues/issue-x", Some(&field), &[]).await;
    assert!(page.text.contains("/issues/issue-x/acknowledge\""), "field staff acknowledge: {}", page.text);
    assert!(!page.text.contains("/issues/issue-x/escalate\""), "but do not escalate");
    assert_eq!(post(field.clone(), "acknowledge", vec![]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        post(field.clone(), "action", vec![("action", "called the day guard")]).await.status,
        StatusCode::SEE_OTHER
    );
    // A supervisor takes the action back (it was another gate's): the page shows it.
    let events = {
        let request = Request::get("/api/v1/events?from=1&limit=1000")
            .header("authorization", format!("Bearer {}", web.admin))
            .body(Body::empty())
            .unwrap();
        serde_json::from_str::<Vec<serde_json::Value>>(&web.send(request).await.text).unwrap()
    };
    let action = events.iter().rev().find(|event| event["event_type"] == "GateIssueActionTaken").expect("the action");
    web.command(
        &web.supervisor,
        "retract-event",
        json!({"retracted_event_id": action["event_id"], "retracted_by": "cadre-1", "reason": "that was the south gate"}),
    )
    .await;
    let page = web.get("/issues/issue-x", Some(&supervisor), &[]).await;
    assert!(page.text.contains("Retracted: that was the south gate"), "{}", page.text);
    let missing = post(supervisor.clone(), "escalate", vec![]).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.text.contains("Choose who it goes to."));
    assert_eq!(
        post(supervisor.clone(), "escalate", vec![("escalated_to", "police")]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post(field.clone(), "resolve", vec![("resolution", "the day guard came back")]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post(supervisor.clone(), "reopen", vec![("reason", "gone again at noon")]).await.status,
        StatusCode::SEE_OTHER
    );
    let page = web.get("/issues/issue-x", Some(&supervisor), &[]).await;
    for step in
        ["Acknowledged", "Escalated to police", "Resolved: the day guard came back", "Reopened: gone again at noon"]
    {
        assert!(page.text.contains(step), "{step}: {}", page.text);
    }
}

#[tokio::test]
async fn the_outboxs_posts_without_a_session_are_told_401_not_sent_to_sign_in() {
    let web = web().await;
    let request = Request::post("/gates/gate-a/check")
        .header("host", HOST)
        .header("origin", ORIGIN)
        .header("x-gridwatch-script", "outbox")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("result=ok"))
        .unwrap();
    let page = web.send(request).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "a redirect would be followed to a 200 and the record lost");
    let page = web.post_form("/gates/gate-a/check", None, ORIGIN, &[("result", "ok")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "a plain form is sent to sign in");
}

#[tokio::test]
async fn a_refusal_by_the_rules_is_told_in_the_pages_language_and_records_nothing() {
    let web = web().await;
    let field = web.sign_in(&web.field_a).await;
    web.command(
        &web.supervisor,
        "close-checkpoint",
        json!({"checkpoint_id": "gate-a", "reason": "the compound is sealed"}),
    )
    .await;
    let before = head(&web).await;
    for (lang, words) in
        [("en", "The rules refused this: gate gate-a is closed"), ("zh-CN", "规则不允许：卡口 gate-a 已关闭")]
    {
        let form = web.get("/gates/gate-a/check", Some(&field), &[("accept-language", lang)]).await;
        let csrf = form.attribute_after("name=\"_csrf\"", "value");
        let request = Request::post("/gates/gate-a/check")
            .header("host", HOST)
            .header("origin", ORIGIN)
            .header("cookie", &field)
            .header("accept-language", lang)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(serde_urlencoded::to_string([("_csrf", csrf.as_str()), ("result", "ok")]).unwrap()))
            .unwrap();
        let page = web.send(request).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.text);
        assert!(page.text.contains(words), "{lang}: {}", page.text);
    }
    assert_eq!(head(&web).await, before);
}

#[tokio::test]
async fn a_poster_names_the_public_address_when_one_is_set() {
    let web =
        web_with(ServerConfig { public_url: Some("https://gate.example.org/".into()), ..ServerConfig::default() })
            .await;
    let field = web.sign_in(&web.field_a).await;
    let poster = web.get("/gates/gate-a/poster", Some(&field), &[]).await;
    let text = poster.text.replace("&#x2f;", "/");
    assert!(text.contains("https://gate.example.org/gates/gate-a/check"), "{text}");
    assert!(!text.contains("gridwatch.test/gates"), "not the Host header's");
}
