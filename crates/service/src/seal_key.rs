//! The key that will sign day seals: ed25519 (`ed25519-dalek`), kept in a file of its own,
//! outside the log and, by default, outside the data directory, so that a copy of the data
//! (a backup, an export) never carries it. The file holds the 32-byte secret as 64 hex
//! digits and a newline, mode 0600; it is created once and never overwritten.
//!
//! A key is named by its id: the first 16 hex digits of the blake3 hash of its 32-byte public
//! key. Only the public key and its id ever leave this module (`PublicSealKey`); the secret
//! is never printed, logged, answered or written to the log (`SealKey`'s `Debug` shows the id
//! only, and the signing key is zeroed when dropped).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

/// The only algorithm seals are signed with.
pub const SEAL_KEY_ALGORITHM: &str = "ed25519";

/// Why a seal key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SealKeyError {
    #[error("{} already exists: a seal key is never overwritten", .0.display())]
    Exists(PathBuf),
    #[error("{}: not a gridwatch seal key (64 hex digits expected)", .0.display())]
    Malformed(PathBuf),
    #[error("{} can be read by other users (mode {mode:o}); make it 0600", .path.display())]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A seal key with its secret.
pub struct SealKey {
    signing: SigningKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").field("key_id", &self.public().key_id).finish_non_exhaustive()
    }
}

/// What may be published of a seal key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PublicSealKey {
    pub algorithm: &'static str,
    pub key_id: String,
    /// The 32-byte ed25519 public key, hex.
    pub public_key: String,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SealKeyError + '_ {
    move |source| SealKeyError::Io { path: path.to_owned(), source }
}

impl SealKey {
    /// Makes a new key in `path` (which must not exist), from the system's random source.
    pub fn create(path: &Path) -> Result<SealKey, SealKeyError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|error| SealKeyError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(error.to_string()),
        })?;
        let key = SealKey { signing: SigningKey::from_bytes(&secret) };
        // The hex text lives in a buffer on the stack that is zeroed after the write.
        let mut text = [0u8; 65];
        hex::encode_to_slice(secret, &mut text[..64]).expect("64 hex digits for 32 bytes");
        text[64] = b'\n';
        secret.fill(0);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(
            |error| match error.kind() {
                std::io::ErrorKind::AlreadyExists => SealKeyError::Exists(path.to_owned()),
                _ => SealKeyError::Io { path: path.to_owned(), source: error },
            },
        )?;
        let written = file.write_all(&text).and_then(|()| file.sync_all());
        text.fill(0);
        written.map_err(io_error(path))?;
        // The file's name must survive a power loss too.
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::File::open(parent).and_then(|dir| dir.sync_all()).map_err(io_error(parent))?;
        }
        Ok(key)
    }

    /// Reads the key in `path`; refuses a file other users can read.
    pub fn load(path: &Path) -> Result<SealKey, SealKeyError> {
        let mode = std::fs::metadata(path).map_err(io_error(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SealKeyError::TooOpen { path: path.to_owned(), mode });
        }
        // Read into a buffer on the stack that is zeroed afterwards (a key file is 65 bytes).
        let mut text = [0u8; 66];
        let mut file = std::fs::File::open(path).map_err(io_error(path))?;
        let mut length = 0;
        loop {
            match std::io::Read::read(&mut file, &mut text[length..]).map_err(io_error(path))? {
                0 => break,
                read => length += read,
            }
            if length == text.len() {
                break;
            }
        }
        let mut secret = [0u8; 32];
        let decoded = match &text[..length] {
            [digits @ .., b'\n'] | digits if digits.len() == 64 => hex::decode_to_slice(digits, &mut secret).ok(),
            _ => None,
        };
        text.fill(0);
        if decoded.is_none() {
            return Err(SealKeyError::Malformed(path.to_owned()));
        }
        let key = SealKey { signing: SigningKey::from_bytes(&secret) };
        secret.fill(0);
        Ok(key)
    }

    /// What may be published of this key.
    pub fn public(&self) -> PublicSealKey {
        PublicSealKey::of(&self.signing.verifying_key().to_bytes())
    }

    /// The ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing.sign(message).to_bytes()
    }
}

impl PublicSealKey {
    /// The published form of the 32-byte ed25519 public key `public`: its id is the hex of
    /// the first 8 bytes of its BLAKE3 hash.
    pub fn of(public: &[u8; 32]) -> PublicSealKey {
        PublicSealKey {
            algorithm: SEAL_KEY_ALGORITHM,
            key_id: hex::encode(&blake3::hash(public).as_bytes()[..8]),
            public_key: hex::encode(public),
        }
    }
}

#[cfg(test)]
mod tests {
    // Test code: an unwrap that fails is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_key_is_made_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        let made = SealKey::create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let loaded = SealKey::load(&path).unwrap();
        assert_eq!(made.public(), loaded.public());
        assert_eq!(made.public().key_id.len(), 16);
        assert_eq!(made.public().public_key.len(), 64);
        // Never overwritten.
        assert!(matches!(SealKey::create(&path), Err(SealKeyError::Exists(_))));
        assert_eq!(SealKey::load(&path).unwrap().public(), made.public());
        // Neither its Debug nor its public part shows the secret.
        let secret = std::fs::read_to_string(&path).unwrap();
        let secret = secret.trim();
        assert!(!format!("{made:?}").contains(secret));
        assert!(!serde_json::to_string(&made.public()).unwrap().contains(secret));
        // Two keys differ.
        let other = SealKey::create(&dir.path().join("other.key")).unwrap();
        assert_ne!(other.public(), made.public());
    }

    #[test]
    fn a_key_file_others_can_read_or_that_is_not_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        SealKey::create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SealKey::load(&path), Err(SealKeyError::TooOpen { mode: 0o644, .. })));
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not hex\n").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(SealKey::load(&bad), Err(SealKeyError::Malformed(_))));
        assert!(matches!(SealKey::load(&dir.path().join("missing.key")), Err(SealKeyError::Io { .. })));
    }
}
