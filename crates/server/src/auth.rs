//! Bearer tokens and roles: who may read and write what.
//!
//! A token is `gw_<token id>_<secret>`: 6 random bytes of public id (named in logs and
//! listings) and 32 random bytes of secret, both hex. Only the token's blake3 hash is
//! stored, in `tokens.ndjson` beside the log (never in the log): a line per token, appended
//! with one write and fsynced, so `gridwatch token create` can add tokens while the server
//! runs; the server reads new lines when it meets a token id it does not know. Tokens are
//! 256-bit random, so a fast hash is enough (there is nothing to guess by brute force).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use domain::Command;
use events_schema::{Access, EntityId, Timestamp};
use serde::{Deserialize, Serialize};

/// The file beside the log that holds the token hashes.
pub const TOKEN_FILE_NAME: &str = "tokens.ndjson";
const TOKEN_PREFIX: &str = "gw_";
const TOKEN_ID_BYTES: usize = 6;
const TOKEN_SECRET_BYTES: usize = 32;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Records checks and tallies, raises issues and acts on them, at its assigned sites.
    Field,
    /// Everything operational: every command but places, people and day seals; all reads.
    Supervisor,
    /// Reads everything, including the audit timeline, replays and the raw log; writes nothing.
    Auditor,
    /// Places, people and tokens, the raw log, and everything else.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        match text {
            "field" | "field-staff" => Ok(Role::Field),
            "supervisor" => Ok(Role::Supervisor),
            "auditor" => Ok(Role::Auditor),
            "admin" => Ok(Role::Admin),
            other => Err(format!("{other:?} is not a role: field, supervisor, auditor or admin")),
        }
    }
}

/// One kind of access; each route and command needs one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// The status board and issues (of its sites, for field staff).
    ReadStatus,
    /// The audit timeline, replays, reports, the raw log and the live feed.
    ReadAudit,
    /// Checks, tallies, inspections, raising and working on issues, field notes.
    WriteField,
    /// Every other operational command: assignments, escalations, verification, schedules,
    /// rounds, ledger tasks, corrections.
    WriteOperational,
    /// Places and people (registrations), day seals.
    WriteReference,
    /// Raw appends to a stream of the log.
    AppendLog,
    /// Creating tokens.
    ManageTokens,
    /// Backups of the whole log.
    Backup,
}

impl Role {
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Supervisor => matches!(permission, ReadStatus | ReadAudit | WriteField | WriteOperational),
            Role::Auditor => matches!(permission, ReadStatus | ReadAudit),
            Role::Field => matches!(permission, ReadStatus | WriteField),
        }
    }

    /// Whether this role's reads and writes are limited to the token's sites.
    pub fn is_site_bound(self) -> bool {
        self == Role::Field
    }
}

/// The permission a command needs: its kind's access class, as the catalogue says.
pub fn permission_for(command: &Command) -> Permission {
    permission_to_write(command.facts().access())
}

/// The permission that writing an event of access class `access` needs; correcting or
/// retracting an event needs it for the amended event's kind too (a supervisor may correct
/// a patrol check, not a gate's registration).
pub fn permission_to_write(access: Access) -> Permission {
    match access {
        Access::Reference | Access::System => Permission::WriteReference,
        Access::Field => Permission::WriteField,
        Access::Operational => Permission::WriteOperational,
    }
}

/// How long after the fact field staff may record an event (a phone that was offline for
/// a weekend); older events are a supervisor's to record.
pub const FIELD_BACKDATE_MICROS_MAX: i64 = 72 * 3_600_000_000;

/// The people a command says acted (the checker, the one raising or acting on an issue,
/// the author, ...), as its kind's facts name them: field staff may only name themselves,
/// and a field command that names nobody cannot be theirs.
pub fn acting_people(command: &Command) -> Vec<&EntityId> {
    command.facts().acting()
}

/// A token as stored: everything but the secret, which is kept only as a hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub token_id: String,
    pub role: Role,
    /// For field staff: the sites it may work at.
    pub sites: Vec<EntityId>,
    /// Who the events written with it are by.
    pub actor: EntityId,
    pub created_at: Timestamp,
    /// blake3 of the whole token text, hex.
    pub token_hash: String,
}

impl TokenRecord {
    fn principal(&self) -> Principal {
        Principal {
            token_id: self.token_id.clone(),
            role: self.role,
            sites: self.sites.clone(),
            actor: self.actor.clone(),
        }
    }
}

/// A line of the token file that withdraws a token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Revocation {
    revoked_token_id: String,
    revoked_at: Timestamp,
}

/// A line of the token file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenLine {
    Token(TokenRecord),
    Revoked(Revocation),
}

/// What a listing shows of a token: never its hash.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TokenInfo {
    pub token_id: String,
    pub role: Role,
    #[schema(value_type = Vec<String>)]
    pub sites: Vec<EntityId>,
    #[schema(value_type = String)]
    pub actor: EntityId,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// The caller, once its token checked out.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub token_id: String,
    pub role: Role,
    pub sites: Vec<EntityId>,
    pub actor: EntityId,
}

impl Principal {
    /// Whether it may work at `site` (always, for roles not bound to sites).
    pub fn covers_site(&self, site: &EntityId) -> bool {
        !self.role.is_site_bound() || self.sites.contains(site)
    }
}

#[derive(Debug, Default)]
struct Loaded {
    by_id: HashMap<String, TokenRecord>,
    /// How many bytes of the file were taken (whole lines): the file only grows.
    bytes_read: u64,
    /// The file's size at the last read (more than `bytes_read` while a line is torn).
    size_seen: u64,
}

/// Where the tokens live when every node of a cluster shares them: a store outside the log
/// (the hashes only, as in the file). Its calls block: they are made off the async workers.
pub trait SharedTokens: Send + Sync + std::fmt::Debug {
    /// Stores a token's record (its hash, never its text) under its id, durably; returns once
    /// this node's [`TokenFile::apply_shared`] has taken it (changes apply in their order).
    fn put(&self, token_id: &str, record: Vec<u8>) -> std::io::Result<()>;
    /// Removes a token's record; returns once this node has applied the removal.
    fn remove(&self, token_id: &str) -> std::io::Result<()>;
    /// `true` for the first caller ever, on any node, and never again: the installation's
    /// first start, which makes an admin token.
    fn claim_first_start(&self) -> std::io::Result<bool>;
    /// How long ago this node last proved that it holds every change of the shared tokens
    /// (`None`: it never did). A node cut off from the others receives no revocation and
    /// is not told so: this bounds how stale its tokens may be.
    fn unconfirmed_for(&self) -> Option<std::time::Duration>;
}

/// Shared tokens are trusted for this long after this node last proved it holds every change
/// of them; then no token is accepted on this node (503) until it proves it again. So a token
/// revoked on one node stops working on every node within this bound, also on a node cut
/// off from the others (it cannot see the revocation, but it cannot prove it is current
/// either). A leader election of the cluster takes 6-16 s on the 2-core test machine.
pub const SHARED_TOKENS_UNCONFIRMED_MAX: std::time::Duration = std::time::Duration::from_secs(20);

/// No token can be checked now, so none is accepted: the token file cannot be read, or this
/// node cannot prove that it holds the latest changes of the cluster's shared tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokensUnavailable {
    #[error("cannot read the token file: {0}")]
    File(#[from] std::io::Error),
    #[error(
        "this node cannot prove that it holds the cluster's latest token changes (last proof {}): \
         no token is accepted here until it can",
        match .0 { Some(ago) => format!("{} s ago", ago.as_secs()), None => "never".to_owned() }
    )]
    Unconfirmed(Option<std::time::Duration>),
}

/// Kept whole inside the `io::Error` (`get_ref` and `downcast_ref` find it again), so that
/// callers of the io-typed methods can answer it as what it is.
impl From<TokensUnavailable> for std::io::Error {
    fn from(error: TokensUnavailable) -> std::io::Error {
        std::io::Error::other(error)
    }
}

/// The tokens of one data directory (its token file) or of a cluster ([`SharedTokens`]).
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    /// When set, the tokens are in it and the file is not read.
    shared: Option<std::sync::Arc<dyn SharedTokens>>,
    /// A std lock: held only for in-memory lookups and the short read of new lines.
    loaded: RwLock<Loaded>,
    /// Held for a whole read-and-apply of new lines, so that no reload can miss lines that
    /// another one read too early (a std `Mutex`: the read is of a few lines).
    reloading: std::sync::Mutex<()>,
}

/// A token that was just made: its text (shown once) and what is stored.
#[derive(Debug)]
pub struct NewToken {
    pub token: String,
    pub record: TokenRecord,
}

fn hash_of(token: &str) -> blake3::Hash {
    blake3::hash(token.as_bytes())
}

fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|error| std::io::Error::other(format!("no randomness: {error}")))?;
    Ok(hex::encode(buffer))
}

/// The token id named by `text`: the id itself, or the id part of a whole token given by
/// mistake (so that messages can name it without repeating the secret).
pub fn id_of(text: &str) -> &str {
    text.strip_prefix(TOKEN_PREFIX).and_then(|rest| rest.split('_').next()).unwrap_or(text)
}

/// Whether the file is empty or ends with a whole line.
pub(crate) fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Whether `text` contains something shaped like a token, with or without its `gw_`
/// prefix, or a sign-in link's code (a bearer secret too), so that it is kept out of the log.
pub fn contains_token(text: &[u8]) -> bool {
    let secret_len = TOKEN_ID_BYTES * 2 + 1 + TOKEN_SECRET_BYTES * 2;
    let token = text.windows(secret_len).any(|window| {
        window
            .iter()
            .enumerate()
            .all(|(index, byte)| if index == TOKEN_ID_BYTES * 2 { *byte == b'_' } else { byte.is_ascii_hexdigit() })
    });
    const LINK_PATH: &[u8] = b"/signin/link/";
    let code_len = crate::signin_links::LINK_CODE_BYTES * 2;
    let link = text
        .windows(LINK_PATH.len() + code_len)
        .any(|window| window.starts_with(LINK_PATH) && window[LINK_PATH.len()..].iter().all(u8::is_ascii_hexdigit));
    token || link
}

impl TokenFile {
    /// The token file in `data_dir` (which need not exist yet).
    pub fn new(data_dir: &Path) -> TokenFile {
        TokenFile {
            path: data_dir.join(TOKEN_FILE_NAME),
            shared: None,
            loaded: RwLock::new(Loaded::default()),
            reloading: std::sync::Mutex::new(()),
        }
    }

    /// The tokens of a cluster, in `shared`; `data_dir` keeps what stays with the node (its
    /// sign-in links). Empty until the follower of `shared` hands it the records.
    pub fn shared(data_dir: &Path, shared: std::sync::Arc<dyn SharedTokens>) -> TokenFile {
        TokenFile { shared: Some(shared), ..TokenFile::new(data_dir) }
    }

    /// Takes one change of the shared tokens: a token's record, or `None` when it was
    /// revoked. A record that does not parse is skipped with a warning (it authenticates
    /// nothing).
    pub fn apply_shared(&self, token_id: &str, record: Option<&[u8]>) {
        let mut loaded = self.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match record.map(serde_json::from_slice::<TokenRecord>) {
            Some(Ok(record)) if record.token_id == token_id => {
                loaded.by_id.insert(record.token_id.clone(), record);
            }
            Some(Ok(_)) | Some(Err(_)) => {
                tracing::warn!(token_id, "skipping a shared token record that does not parse or names another id");
                loaded.by_id.remove(token_id);
            }
            None => {
                loaded.by_id.remove(token_id);
            }
        }
    }

    /// Reads the lines added since the last read. A line that does not parse (a write cut
    /// short by a crash, before its token was ever shown) is skipped with a warning.
    pub fn reload(&self) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        // Readers of the tokens are not held up while the file is read: only other reloads.
        let _reloading = self.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let offset = self.read_loaded().bytes_read;
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        // Only whole lines: a line being written right now is read next time.
        let complete = bytes.iter().rposition(|byte| *byte == b'\n').map_or(0, |end| end + 1);
        let mut lines = Vec::new();
        for line in bytes[..complete].split(|byte| *byte == b'\n').filter(|line| !line.trim_ascii().is_empty()) {
            match serde_json::from_slice::<TokenLine>(line) {
                Ok(line) => lines.push(line),
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "skipping a bad line of the token file")
                }
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Reloads are serialised: nothing moved the offset since it was read.
        debug_assert_eq!(loaded.bytes_read, offset);
        for line in lines {
            match line {
                TokenLine::Token(record) => {
                    loaded.by_id.insert(record.token_id.clone(), record);
                }
                TokenLine::Revoked(revocation) => {
                    loaded.by_id.remove(&revocation.revoked_token_id);
                }
            }
        }
        loaded.bytes_read = offset + complete as u64;
        loaded.size_seen = offset + bytes.len() as u64;
        Ok(())
    }

    fn read_loaded(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the lines added since the last read, if the file grew (one stat tells). A file
    /// that shrank or vanished (replaced by hand) is read again from the start.
    fn catch_up(&self) -> Result<(), TokensUnavailable> {
        if let Some(shared) = &self.shared {
            // The follower of the shared tokens keeps them current, as long as it can prove so.
            return match shared.unconfirmed_for() {
                Some(ago) if ago <= SHARED_TOKENS_UNCONFIRMED_MAX => Ok(()),
                other => Err(TokensUnavailable::Unconfirmed(other)),
            };
        }
        let length = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(error.into()),
        };
        let seen = self.read_loaded().size_seen;
        if length < seen {
            let _reloading = self.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *self.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Loaded::default();
        }
        if length != seen {
            self.reload()?;
        }
        Ok(())
    }

    /// Whether the file has never held a token (a first start).
    pub fn is_new(&self) -> std::io::Result<bool> {
        if let Some(shared) = &self.shared {
            return shared.claim_first_start();
        }
        self.catch_up()?;
        Ok(self.read_loaded().size_seen == 0)
    }

    /// Whether the token with this id is still live (for long connections, checked again
    /// while they last).
    pub fn is_live(&self, token_id: &str) -> Result<bool, TokensUnavailable> {
        self.checkable()?;
        Ok(self.read_loaded().by_id.contains_key(token_id))
    }

    /// `Ok` when tokens can be checked now (the file read, the shared tokens proven current).
    /// A file that cannot be read is logged as an error each time; shared tokens that are not
    /// proven current only at debug level (the bucket's follower logs when that begins and
    /// ends: an outage must not write a line per request).
    pub fn checkable(&self) -> Result<(), TokensUnavailable> {
        self.catch_up().inspect_err(|error| match error {
            TokensUnavailable::File(_) => tracing::error!(%error, "no token can be checked"),
            TokensUnavailable::Unconfirmed(_) => tracing::debug!(%error, "no token can be checked"),
        })
    }

    /// Appends one line durably: one write of a whole line to a file opened for appending,
    /// so concurrent writers (the server and `gridwatch token ...`) never interleave inside
    /// a line; then reads it back.
    fn append_line(&self, line: &impl Serialize) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        // A line cut short by a crash must not swallow this one.
        if !ends_with_newline(&self.path)? {
            bytes.insert(0, b'\n');
        }
        file.write_all(&bytes)?;
        file.sync_all()?;
        Ok(self.catch_up()?)
    }

    /// Makes a token, stores its hash durably, and returns it (the only time its text exists).
    /// Field tokens are personal: they need the staff id they act as, and sites only make
    /// sense for them.
    pub fn create(&self, role: Role, sites: Vec<EntityId>, actor: Option<EntityId>) -> std::io::Result<NewToken> {
        if role == Role::Field && actor.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a field token acts as one staff member: give its staff id as the actor",
            ));
        }
        if role != Role::Field && !sites.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "sites are for field tokens: other roles are not bound to sites",
            ));
        }
        let token_id = random_hex(TOKEN_ID_BYTES)?;
        let token = format!("{TOKEN_PREFIX}{token_id}_{}", random_hex(TOKEN_SECRET_BYTES)?);
        let actor = match actor {
            Some(actor) => actor,
            None => EntityId::new(format!("token:{token_id}")).map_err(std::io::Error::other)?,
        };
        let record = TokenRecord {
            token_id,
            role,
            sites,
            actor,
            created_at: Timestamp::now(),
            token_hash: hash_of(&token).to_hex().to_string(),
        };
        match &self.shared {
            Some(shared) => {
                shared.put(&record.token_id, serde_json::to_vec(&record).map_err(std::io::Error::other)?)?
            }
            None => self.append_line(&record)?,
        }
        if self.read_loaded().by_id.get(&record.token_id) != Some(&record) {
            return Err(std::io::Error::other(format!(
                "the token file {} did not take the new token",
                self.path.display()
            )));
        }
        Ok(NewToken { token, record })
    }

    /// Revokes a token: from now on it authenticates nowhere (a running server reads the
    /// revocation before its next request). `false` when no such token is live.
    pub fn revoke(&self, token_id: &str) -> std::io::Result<bool> {
        let token_id = id_of(token_id);
        self.catch_up()?;
        if !self.read_loaded().by_id.contains_key(token_id) {
            return Ok(false);
        }
        match &self.shared {
            Some(shared) => shared.remove(token_id)?,
            None => {
                self.append_line(&Revocation { revoked_token_id: token_id.to_owned(), revoked_at: Timestamp::now() })?
            }
        }
        Ok(true)
    }

    /// Every live token (without its hash), oldest first.
    pub fn list(&self) -> std::io::Result<Vec<TokenInfo>> {
        self.catch_up()?;
        let mut tokens: Vec<TokenInfo> = self
            .read_loaded()
            .by_id
            .values()
            .map(|record| TokenInfo {
                token_id: record.token_id.clone(),
                role: record.role,
                sites: record.sites.clone(),
                actor: record.actor.clone(),
                created_at: record.created_at,
            })
            .collect();
        tokens.sort_by(|a, b| (a.created_at, &a.token_id).cmp(&(b.created_at, &b.token_id)));
        Ok(tokens)
    }

    /// The directory the token file is in (the data directory).
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The principal of the live token with this id (for a one-time sign-in link, which
    /// names the token by its id, never by its secret).
    pub fn principal_of(&self, token_id: &str) -> Result<Option<Principal>, TokensUnavailable> {
        self.checkable()?;
        Ok(self.read_loaded().by_id.get(token_id).map(TokenRecord::principal))
    }

    /// The principal of a bearer token, or `None` when it is not a valid (live) token.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>, TokensUnavailable> {
        // Tokens made or revoked since the last read: one stat tells whether there are any.
        self.checkable()?;
        let Some(token_id) = token.strip_prefix(TOKEN_PREFIX).and_then(|rest| rest.split('_').next()) else {
            return Ok(None);
        };
        if token_id.len() != TOKEN_ID_BYTES * 2 {
            return Ok(None);
        }
        let loaded = self.read_loaded();
        let Some(record) = loaded.by_id.get(token_id) else { return Ok(None) };
        let Ok(stored) = blake3::Hash::from_hex(&record.token_hash) else { return Ok(None) };
        // blake3::Hash compares in constant time.
        Ok((stored == hash_of(token)).then(|| record.principal()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token without its `gw_` prefix, as someone might paste it.
    fn id_of_secret(token: &str) -> &str {
        token.strip_prefix(TOKEN_PREFIX).unwrap()
    }

    #[test]
    fn tokens_are_stored_as_hashes_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::new(dir.path());
        let site = EntityId::new("site-a").unwrap();
        let made = file.create(Role::Field, vec![site.clone()], Some(EntityId::new("guard-1").unwrap())).unwrap();
        let stored = std::fs::read_to_string(dir.path().join(TOKEN_FILE_NAME)).unwrap();
        assert!(!stored.contains(&made.token), "the token text is never stored");
        assert!(contains_token(made.token.as_bytes()));
        // Without its prefix too, and a sign-in link's code; not a chain hash or an id.
        assert!(contains_token(format!("see {} please", id_of_secret(&made.token)).as_bytes()));
        let code = "ab".repeat(crate::signin_links::LINK_CODE_BYTES);
        assert!(contains_token(format!("open https://gw.example/signin/link/{code} now").as_bytes()));
        assert!(!contains_token(format!("hash {code} of event 0190_1234").as_bytes()));
        // Another process's view of the file sees the new token.
        let other = TokenFile::new(dir.path());
        let principal = other.authenticate(&made.token).unwrap().unwrap();
        assert_eq!(principal.role, Role::Field);
        assert_eq!(principal.sites, vec![site]);
        assert_eq!(principal.actor.as_str(), "guard-1");
        assert!(file.create(Role::Field, vec![], None).is_err(), "a field token names its person");
        assert!(file.create(Role::Auditor, vec![EntityId::new("site-a").unwrap()], None).is_err());
        // A changed secret, a made-up id, and junk are refused.
        let mut wrong = made.token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert_eq!(other.authenticate(&wrong).unwrap(), None);
        assert_eq!(other.authenticate("gw_000000000000_00").unwrap(), None);
        assert_eq!(other.authenticate("Bearer").unwrap(), None);
        assert!(!other.is_new().unwrap());
        assert!(TokenFile::new(&dir.path().join("elsewhere")).is_new().unwrap());
    }

    #[test]
    fn a_revoked_token_stops_working_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::new(dir.path());
        let kept = file.create(Role::Auditor, vec![], None).unwrap();
        let revoked = file.create(Role::Supervisor, vec![], None).unwrap();
        // A server that already knows both tokens.
        let server = TokenFile::new(dir.path());
        assert!(server.authenticate(&revoked.token).unwrap().is_some());
        assert!(TokenFile::new(dir.path()).revoke(&revoked.record.token_id).unwrap());
        assert_eq!(
            server.authenticate(&revoked.token).unwrap(),
            None,
            "the revocation is read before the next request"
        );
        assert!(server.authenticate(&kept.token).unwrap().is_some());
        assert!(!file.revoke(&revoked.record.token_id).unwrap(), "already revoked");
        assert!(!file.revoke("000000000000").unwrap(), "unknown");
        let listed: Vec<String> = server.list().unwrap().into_iter().map(|token| token.token_id).collect();
        assert_eq!(listed, vec![kept.record.token_id.clone()]);
        assert_eq!(TokenFile::new(dir.path()).authenticate(&revoked.token).unwrap(), None, "also after a restart");
    }

    #[test]
    fn a_token_file_replaced_by_hand_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::new(dir.path());
        let first = file.create(Role::Auditor, vec![], None).unwrap();
        let second = file.create(Role::Auditor, vec![], None).unwrap();
        let server = TokenFile::new(dir.path());
        assert!(server.authenticate(&first.token).unwrap().is_some());
        // Keep only the second token's line.
        let path = dir.path().join(TOKEN_FILE_NAME);
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: String =
            text.lines().filter(|line| line.contains(&second.record.token_id)).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, kept).unwrap();
        assert_eq!(server.authenticate(&first.token).unwrap(), None);
        assert!(server.authenticate(&second.token).unwrap().is_some());
        // A whole token given to revoke names its id.
        assert!(server.revoke(&second.token).unwrap());
        assert_eq!(server.authenticate(&second.token).unwrap(), None);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::new(dir.path());
        let made = file.create(Role::Auditor, vec![], None).unwrap();
        let mut handle = std::fs::OpenOptions::new().append(true).open(dir.path().join(TOKEN_FILE_NAME)).unwrap();
        handle.write_all(b"{\"token_id\":\"ab").unwrap();
        let fresh = TokenFile::new(dir.path());
        assert_eq!(fresh.authenticate(&made.token).unwrap().unwrap().role, Role::Auditor);
        // The next token starts on a line of its own, and works.
        let next = file.create(Role::Supervisor, vec![], None).unwrap();
        assert_eq!(fresh.authenticate(&next.token).unwrap().unwrap().role, Role::Supervisor);
        assert_eq!(TokenFile::new(dir.path()).authenticate(&next.token).unwrap().unwrap().role, Role::Supervisor);
    }

    /// A bucket every node shares, in memory: its followers are the nodes' token stores.
    #[derive(Debug, Default)]
    struct Bucket {
        records: std::sync::Mutex<HashMap<String, Vec<u8>>>,
        followers: std::sync::Mutex<Vec<std::sync::Weak<TokenFile>>>,
        first_start_claimed: std::sync::atomic::AtomicBool,
        /// How long ago the node last proved it holds every change; `None`: never.
        unconfirmed: std::sync::Mutex<Option<std::time::Duration>>,
    }

    impl Bucket {
        fn tell(&self, token_id: &str, record: Option<&[u8]>) {
            for follower in self.followers.lock().unwrap().iter().filter_map(|follower| follower.upgrade()) {
                follower.apply_shared(token_id, record);
            }
        }

        fn node(self: &std::sync::Arc<Bucket>, dir: &Path) -> std::sync::Arc<TokenFile> {
            let node = std::sync::Arc::new(TokenFile::shared(dir, self.clone()));
            for (token_id, record) in self.records.lock().unwrap().iter() {
                node.apply_shared(token_id, Some(record));
            }
            self.followers.lock().unwrap().push(std::sync::Arc::downgrade(&node));
            node
        }
    }

    impl SharedTokens for Bucket {
        fn put(&self, token_id: &str, record: Vec<u8>) -> std::io::Result<()> {
            self.records.lock().unwrap().insert(token_id.to_owned(), record.clone());
            self.tell(token_id, Some(&record));
            Ok(())
        }

        fn remove(&self, token_id: &str) -> std::io::Result<()> {
            self.records.lock().unwrap().remove(token_id);
            self.tell(token_id, None);
            Ok(())
        }

        fn claim_first_start(&self) -> std::io::Result<bool> {
            Ok(!self.first_start_claimed.swap(true, std::sync::atomic::Ordering::SeqCst))
        }

        fn unconfirmed_for(&self) -> Option<std::time::Duration> {
            *self.unconfirmed.lock().unwrap()
        }
    }

    /// A fresh bucket whose nodes proved a moment ago that they hold every change.
    fn confirmed_bucket() -> std::sync::Arc<Bucket> {
        let bucket = std::sync::Arc::new(Bucket::default());
        *bucket.unconfirmed.lock().unwrap() = Some(std::time::Duration::ZERO);
        bucket
    }

    #[test]
    fn shared_tokens_are_refused_on_a_node_that_cannot_prove_it_holds_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = confirmed_bucket();
        let node = bucket.node(dir.path());
        let admin = node.create(Role::Admin, vec![], None).unwrap();
        let id = admin.record.token_id.clone();
        let stale = |ago: Option<std::time::Duration>| *bucket.unconfirmed.lock().unwrap() = ago;
        stale(Some(SHARED_TOKENS_UNCONFIRMED_MAX));
        assert_eq!(node.authenticate(&admin.token).unwrap().unwrap().role, Role::Admin, "within the bound");
        for ago in [Some(SHARED_TOKENS_UNCONFIRMED_MAX + std::time::Duration::from_secs(1)), None] {
            stale(ago);
            let refused = node.authenticate(&admin.token);
            assert!(matches!(refused, Err(TokensUnavailable::Unconfirmed(got)) if got == ago), "{refused:?}");
            assert!(node.is_live(&id).is_err() && node.principal_of(&id).is_err() && node.list().is_err());
            assert!(node.authenticate("gw_not_a_token").is_err(), "nothing is checked, not even a bad token");
            let listed = node.list().unwrap_err();
            assert!(listed.get_ref().is_some_and(|inner| inner.is::<TokensUnavailable>()), "found in the io error");
        }
        stale(Some(std::time::Duration::from_secs(3)));
        assert!(node.is_live(&id).unwrap(), "proven again: accepted again");
        assert_eq!(node.principal_of(&id).unwrap().unwrap().role, Role::Admin);
    }

    #[test]
    fn shared_tokens_live_in_the_bucket_as_hashes_and_not_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = confirmed_bucket();
        let a = bucket.node(&dir.path().join("a"));
        assert!(a.is_new().unwrap(), "the first start");
        let admin = a.create(Role::Admin, vec![], None).unwrap();
        let b = bucket.node(&dir.path().join("b"));
        assert!(!b.is_new().unwrap(), "one first start for every node");
        assert_eq!(b.authenticate(&admin.token).unwrap().unwrap().role, Role::Admin, "read when the node starts");
        let field = b.create(Role::Field, vec![], Some(EntityId::new("guard-1").unwrap())).unwrap();
        assert_eq!(a.authenticate(&field.token).unwrap().unwrap().actor.as_str(), "guard-1", "followed after");
        for record in bucket.records.lock().unwrap().values() {
            let text = String::from_utf8_lossy(record);
            assert!(!text.contains(&admin.token) && !text.contains(&field.token), "no token text: {text}");
        }
        assert!(!dir.path().join("a").join(TOKEN_FILE_NAME).exists(), "the file is not written");
        assert!(a.revoke(&field.record.token_id).unwrap());
        assert_eq!(b.authenticate(&field.token).unwrap(), None, "revoked everywhere");
        assert!(!b.revoke(&field.record.token_id).unwrap(), "already revoked");
        // A record that does not parse, or names another token, authenticates nothing.
        b.apply_shared(&admin.record.token_id, Some(b"{\"token_id\":"));
        assert_eq!(b.authenticate(&admin.token).unwrap(), None);
        let record = serde_json::to_vec(&admin.record).unwrap();
        b.apply_shared("000000000000", Some(&record));
        assert_eq!(b.list().unwrap().len(), 0, "{:?}", b.list());
        assert_eq!(a.list().unwrap().len(), 1);
    }

    #[test]
    fn roles_allow_what_the_table_says() {
        use Permission::*;
        let all = [ReadStatus, ReadAudit, WriteField, WriteOperational, WriteReference, AppendLog, ManageTokens];
        let allowed = |role: Role| all.iter().filter(|p| role.allows(**p)).copied().collect::<Vec<_>>();
        assert_eq!(allowed(Role::Field), vec![ReadStatus, WriteField]);
        assert_eq!(allowed(Role::Auditor), vec![ReadStatus, ReadAudit]);
        assert_eq!(allowed(Role::Supervisor), vec![ReadStatus, ReadAudit, WriteField, WriteOperational]);
        assert_eq!(allowed(Role::Admin), all.to_vec());
    }
}
