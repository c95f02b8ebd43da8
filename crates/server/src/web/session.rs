//! Browser sessions: a person signs in once with a token, then the browser holds a session
//! cookie that authenticates pages, forms and the live board.
//!
//! The cookie holds 32 random bytes; the server keeps only their blake3 hash, with the
//! token's principal and the session's CSRF secret, in memory (a restart signs everyone
//! out). A session lasts while its token is live, at most `SESSION_IDLE` between requests
//! and `SESSION_LIFETIME` in all. The long-lived token never goes into a URL or a cookie.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::Principal;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gw_session";
/// A session unused this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// No session lasts longer than this.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most sessions kept; beyond it, the least recently used one ends.
pub const SESSIONS_MAX: usize = 10_000;
/// The most sessions of one token (a person's phone, desk and a few browsers); beyond it,
/// that token's least recently used one ends, so that signing in again and again with one
/// token cannot sign other people out.
pub const SESSIONS_PER_TOKEN_MAX: usize = 16;
const SESSION_ID_BYTES: usize = 32;

#[derive(Clone, Debug)]
struct Session {
    principal: Principal,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// A session found by its cookie.
#[derive(Clone, Debug)]
pub struct Signed {
    pub principal: Principal,
    /// The secret every form post and script request of this session carries.
    pub csrf: String,
    /// The hash the session is kept under (to end it).
    pub key: blake3::Hash,
}

/// The sessions of one server (a std `Mutex`: held for a map lookup or insert only).
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<blake3::Hash, Session>>,
}

fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|error| std::io::Error::other(format!("no randomness: {error}")))?;
    Ok(hex::encode(buffer))
}

impl Sessions {
    /// Starts a session for `principal`: the cookie value (shown to the browser only).
    pub fn create(&self, principal: Principal) -> std::io::Result<String> {
        let id = random_hex(SESSION_ID_BYTES)?;
        let csrf = random_hex(SESSION_ID_BYTES)?;
        let now = Instant::now();
        let mut sessions = self.by_hash.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.retain(|_, session| alive(session, now));
        let token_id = principal.token_id.clone();
        let of_token = |session: &Session| session.principal.token_id == token_id;
        let least_recent = |sessions: &HashMap<blake3::Hash, Session>, only_token: bool| {
            sessions
                .iter()
                .filter(|(_, session)| !only_token || of_token(session))
                .min_by_key(|(_, session)| session.last_seen)
                .map(|(key, _)| *key)
        };
        if sessions.values().filter(|session| of_token(session)).count() >= SESSIONS_PER_TOKEN_MAX {
            if let Some(oldest) = least_recent(&sessions, true) {
                sessions.remove(&oldest);
            }
        }
        if sessions.len() >= SESSIONS_MAX {
            if let Some(oldest) = least_recent(&sessions, false) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(blake3::hash(id.as_bytes()), Session { principal, csrf, created: now, last_seen: now });
        Ok(id)
    }

    /// The live session of cookie value `id` (its use noted), if any.
    pub fn get(&self, id: &str) -> Option<Signed> {
        let key = blake3::hash(id.as_bytes());
        let now = Instant::now();
        let mut sessions = self.by_hash.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let session = sessions.get_mut(&key)?;
        if !alive(session, now) {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(Signed { principal: session.principal.clone(), csrf: session.csrf.clone(), key })
    }

    /// Whether the session kept under `key` still exists (for the live board).
    pub fn exists(&self, key: &blake3::Hash) -> bool {
        let sessions = self.by_hash.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.get(key).is_some_and(|session| alive(session, Instant::now()))
    }

    /// Ends the session kept under `key`.
    pub fn end(&self, key: &blake3::Hash) {
        self.by_hash.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }

    /// Ends every session of token `token_id` (when it is revoked).
    pub fn end_token(&self, token_id: &str) {
        let mut sessions = self.by_hash.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.retain(|_, session| session.principal.token_id != token_id);
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.duration_since(session.last_seen) < SESSION_IDLE && now.duration_since(session.created) < SESSION_LIFETIME
}

/// Whether `given` is the session's CSRF secret (compared by hash: constant time).
pub fn csrf_matches(signed: &Signed, given: &str) -> bool {
    blake3::hash(given.as_bytes()) == blake3::hash(signed.csrf.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use events_schema::EntityId;

    fn principal(token_id: &str) -> Principal {
        Principal {
            token_id: token_id.into(),
            role: Role::Supervisor,
            sites: Vec::new(),
            actor: EntityId::new("sup-1").unwrap(),
        }
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends() {
        let sessions = Sessions::default();
        let id = sessions.create(principal("a")).unwrap();
        let signed = sessions.get(&id).expect("the new session");
        assert_eq!(signed.principal.token_id, "a");
        assert!(csrf_matches(&signed, &signed.csrf));
        assert!(!csrf_matches(&signed, "not-it"));
        assert!(sessions.get("not-a-session").is_none());
        sessions.end(&signed.key);
        assert!(sessions.get(&id).is_none());
        assert!(!sessions.exists(&signed.key));
    }

    #[test]
    fn revoking_a_token_ends_its_sessions_only() {
        let sessions = Sessions::default();
        let first = sessions.create(principal("a")).unwrap();
        let second = sessions.create(principal("a")).unwrap();
        let other = sessions.create(principal("b")).unwrap();
        sessions.end_token("a");
        assert!(sessions.get(&first).is_none());
        assert!(sessions.get(&second).is_none());
        assert!(sessions.get(&other).is_some());
    }

    #[test]
    fn one_token_signing_in_again_and_again_ends_only_its_own_sessions() {
        let sessions = Sessions::default();
        let other = sessions.create(principal("b")).unwrap();
        let first = sessions.create(principal("a")).unwrap();
        let many: Vec<String> =
            (0..SESSIONS_PER_TOKEN_MAX * 3).map(|_| sessions.create(principal("a")).unwrap()).collect();
        assert!(sessions.get(&other).is_some(), "another token's session is kept");
        assert!(sessions.get(&first).is_none(), "the token's least recently used session ended");
        assert!(many.iter().rev().take(SESSIONS_PER_TOKEN_MAX).all(|id| sessions.get(id).is_some()));
        let kept = sessions.by_hash.lock().unwrap();
        assert_eq!(kept.values().filter(|session| session.principal.token_id == "a").count(), SESSIONS_PER_TOKEN_MAX);
    }

    #[test]
    fn the_cookie_value_is_not_what_is_kept() {
        let sessions = Sessions::default();
        let id = sessions.create(principal("a")).unwrap();
        let kept = sessions.by_hash.lock().unwrap();
        assert_eq!(id.len(), SESSION_ID_BYTES * 2);
        assert!(kept.keys().all(|key| key.to_hex().as_str() != id));
        assert!(kept.values().all(|session| session.csrf != id));
    }
}
