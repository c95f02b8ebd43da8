//! One-time sign-in links: `gridwatch token create … --link` (or `token link ID`) prints a
//! URL that signs its first user in as that token's holder, once, within minutes. The
//! long-lived token never goes into the URL: the link holds a random one-time code, and the
//! file beside the log (`signin-links.ndjson`) keeps only its blake3 hash, the token id and
//! when it expires, then a line saying it was used. Lines are appended with one write each
//! and fsynced (like the token file), so the CLI can make links while the server runs.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use events_schema::Timestamp;
use serde::{Deserialize, Serialize};

/// The file beside the log that holds the links' hashes.
pub const LINK_FILE_NAME: &str = "signin-links.ndjson";
/// How long a link is good for when not told.
pub const LINK_MINUTES_DEFAULT: u32 = 15;
/// The longest a link may be good for.
pub const LINK_MINUTES_MAX: u32 = 24 * 60;
pub(crate) const LINK_CODE_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Made { link_hash: String, token_id: String, expires_at: Timestamp },
    Used { used: String },
}

/// Why a link does not sign anyone in.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    #[error("this sign-in link is not known")]
    Unknown,
    #[error("this sign-in link was used already")]
    Used,
    #[error("this sign-in link has expired")]
    Expired,
}

/// The links of one data directory.
#[derive(Debug)]
pub struct SigninLinks {
    path: PathBuf,
    /// Held across a use (read, check, mark used), so two uses of one link cannot both pass
    /// in this process; the file's lines tell other processes.
    using: std::sync::Mutex<()>,
}

fn hash(code: &str) -> String {
    blake3::hash(code.as_bytes()).to_hex().to_string()
}

impl SigninLinks {
    pub fn new(data_dir: &Path) -> SigninLinks {
        SigninLinks { path: data_dir.join(LINK_FILE_NAME), using: std::sync::Mutex::new(()) }
    }

    fn append(&self, line: &Line) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        // A line cut short by a crash must not swallow this one.
        if !crate::auth::ends_with_newline(&self.path)? {
            bytes.insert(0, b'\n');
        }
        file.write_all(&bytes)?;
        file.sync_all()
    }

    /// Makes a link code for `token_id`, good for `minutes`: the code (shown once).
    pub fn create(&self, token_id: &str, minutes: u32, now: Timestamp) -> std::io::Result<String> {
        let mut bytes = [0u8; LINK_CODE_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| std::io::Error::other(format!("no randomness: {error}")))?;
        let code = hex::encode(bytes);
        let minutes = minutes.clamp(1, LINK_MINUTES_MAX);
        let expires_at = Timestamp::from_microsecond(now.as_microsecond() + i64::from(minutes) * 60_000_000)
            .ok_or_else(|| std::io::Error::other("the expiry is out of range"))?;
        self.append(&Line::Made { link_hash: hash(&code), token_id: token_id.to_string(), expires_at })?;
        Ok(code)
    }

    /// Uses link `code` at `now`: the token id it signs in as, the link then spent (durably,
    /// before the answer), or why not.
    pub fn use_once(&self, code: &str, now: Timestamp) -> Result<Result<String, LinkRefused>, std::io::Error> {
        Ok(self.use_once_if(code, now, |token_id| Ok::<_, std::convert::Infallible>(token_id.to_owned()))?.map(
            |taken| match taken {
                Ok(token_id) => token_id,
                Err(never) => match never {},
            },
        ))
    }

    /// Uses link `code` at `now` if `take` accepts its token id: the link is spent (durably,
    /// before the answer) only when `take` answers `Ok`; whatever it answers is returned.
    pub fn use_once_if<T, E>(
        &self,
        code: &str,
        now: Timestamp,
        take: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Result<Result<T, E>, LinkRefused>, std::io::Error> {
        let _using = self.using.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let wanted = hash(code);
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error),
        };
        let mut made: HashMap<String, (String, Timestamp)> = HashMap::new();
        let mut used = false;
        // A line cut short by a crash is skipped, as the token file skips one.
        for line in text.lines().filter_map(|line| serde_json::from_str::<Line>(line).ok()) {
            match line {
                Line::Made { link_hash, token_id, expires_at } if link_hash == wanted => {
                    made.insert(link_hash, (token_id, expires_at));
                }
                Line::Used { used: link_hash } if link_hash == wanted => used = true,
                _ => {}
            }
        }
        let Some((token_id, expires_at)) = made.remove(&wanted) else { return Ok(Err(LinkRefused::Unknown)) };
        if used {
            return Ok(Err(LinkRefused::Used));
        }
        if now > expires_at {
            return Ok(Err(LinkRefused::Expired));
        }
        let taken = take(&token_id);
        if taken.is_ok() {
            self.append(&Line::Used { used: wanted })?;
        }
        Ok(Ok(taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_signs_in_once_within_its_minutes_and_is_kept_as_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let links = SigninLinks::new(dir.path());
        let now = Timestamp::now();
        let code = links.create("abc123", 10, now).unwrap();
        let stored = std::fs::read_to_string(dir.path().join(LINK_FILE_NAME)).unwrap();
        assert!(!stored.contains(&code), "the code is never stored");
        assert_eq!(links.use_once("not-a-code", now).unwrap(), Err(LinkRefused::Unknown));
        // Another process (a second instance over the same file) sees the use too.
        let other = SigninLinks::new(dir.path());
        assert_eq!(links.use_once(&code, now).unwrap(), Ok("abc123".to_string()));
        assert_eq!(other.use_once(&code, now).unwrap(), Err(LinkRefused::Used));
        // Spent only when the caller takes it.
        let kept = links.create("def456", 10, now).unwrap();
        assert_eq!(links.use_once_if(&kept, now, |_| Err::<(), _>("not now")).unwrap(), Ok(Err("not now")));
        assert_eq!(links.use_once_if(&kept, now, |id| Ok::<_, ()>(id.len())).unwrap(), Ok(Ok(6)));
        assert_eq!(links.use_once(&kept, now).unwrap(), Err(LinkRefused::Used));
        let late = links.create("abc123", 10, now).unwrap();
        let after = Timestamp::from_microsecond(now.as_microsecond() + 11 * 60_000_000).unwrap();
        assert_eq!(links.use_once(&late, after).unwrap(), Err(LinkRefused::Expired));
    }
}
