//! The chain-head file: the last durable global position and its chain hash, kept outside
//! sled so that a log which sled's recovery cut short is detected, never taken as whole.
//!
//! sled stops recovery at the first record whose checksum fails, which silently drops every
//! later record. This small file is written after each durable commit and survives that.
//! It holds two 64-byte slots written alternately, each with its own checksum, so a torn
//! write can only lose the newest slot, never both. It is written and synced with the group
//! commit it describes, after the log's own sync and before any of the group's appends is
//! acknowledged: whatever was acknowledged is named by a synced head, so a power loss that
//! makes sled drop an acknowledged tail is always found. A crash between the two syncs leaves
//! the head lagging the log, which is safe: it is only ever a lower bound of what the log
//! must hold (the events after it are checked link by link on open).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use events_schema::{CHAIN_HASH_BYTES, ChainHash};

const MAGIC: &[u8; 8] = b"GWHEAD01";
const SLOT_BYTES: usize = 64;
const CHECKED_BYTES: usize = SLOT_BYTES - 8;

/// The last durable event of the log and its chain hash (position 0 for an empty log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub global_position: u64,
    pub hash: ChainHash,
}

impl ChainHead {
    pub const EMPTY: ChainHead = ChainHead { global_position: 0, hash: [0; CHAIN_HASH_BYTES] };
}

#[derive(Debug)]
pub(crate) struct HeadFile {
    file: File,
    sequence: u64,
}

fn encode_slot(sequence: u64, head: ChainHead) -> [u8; SLOT_BYTES] {
    let mut slot = [0u8; SLOT_BYTES];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&sequence.to_be_bytes());
    slot[16..24].copy_from_slice(&head.global_position.to_be_bytes());
    slot[24..56].copy_from_slice(&head.hash);
    let check = blake3::hash(&slot[..CHECKED_BYTES]);
    slot[CHECKED_BYTES..].copy_from_slice(&check.as_bytes()[..8]);
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(u64, ChainHead)> {
    if slot.len() != SLOT_BYTES || &slot[..8] != MAGIC {
        return None;
    }
    let check = blake3::hash(&slot[..CHECKED_BYTES]);
    if slot[CHECKED_BYTES..] != check.as_bytes()[..8] {
        return None;
    }
    let sequence = u64::from_be_bytes(slot[8..16].try_into().ok()?);
    let global_position = u64::from_be_bytes(slot[16..24].try_into().ok()?);
    let hash = slot[24..56].try_into().ok()?;
    Some((sequence, ChainHead { global_position, hash }))
}

/// Reads the newest valid slot. `Ok(None)` when the file does not exist; an error when it
/// exists but holds no valid slot.
pub(crate) fn read(path: &Path) -> io::Result<Option<ChainHead>> {
    Ok(read_with_sequence(path)?.map(|(_, head)| head))
}

fn read_with_sequence(path: &Path) -> io::Result<Option<(u64, ChainHead)>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let newest = bytes.chunks(SLOT_BYTES).take(2).filter_map(decode_slot).max_by_key(|(sequence, _)| *sequence);
    match newest {
        Some(found) => Ok(Some(found)),
        None => {
            Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} holds no valid chain head", path.display())))
        }
    }
}

impl HeadFile {
    /// Opens the head file at `path`, creating it holding `initial` if it does not exist.
    /// Creation is atomic (a synced temporary file renamed into place, then the directory
    /// synced), so a crash can never leave an empty or missing head file behind a log.
    pub(crate) fn open(path: &Path, initial: ChainHead) -> io::Result<HeadFile> {
        let sequence = match read_with_sequence(path)? {
            Some((sequence, _)) => sequence,
            None => {
                let temporary = path.with_extension("new");
                let mut file = File::create(&temporary)?;
                // Sequence 1 belongs in slot 1, as `write` would put it; slot 0 starts invalid.
                let mut slots = [0u8; 2 * SLOT_BYTES];
                slots[SLOT_BYTES..].copy_from_slice(&encode_slot(1, initial));
                std::io::Write::write_all(&mut file, &slots)?;
                file.sync_all()?;
                std::fs::rename(&temporary, path)?;
                sync_parent_dir(path)?;
                1
            }
        };
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(HeadFile { file, sequence })
    }

    /// Writes `head` into the older slot, not synced yet.
    fn write(&mut self, head: ChainHead) -> io::Result<()> {
        self.sequence += 1;
        let offset = (self.sequence % 2) * SLOT_BYTES as u64;
        self.file.write_all_at(&encode_slot(self.sequence, head), offset)
    }

    /// Writes and syncs `head` before returning.
    pub(crate) fn write_synced(&mut self, head: ChainHead) -> io::Result<()> {
        self.write(head)?;
        self.file.sync_data()
    }
}

/// Syncs the directory holding `path`, so that a file created or renamed there survives a
/// power loss.
pub(crate) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_slot_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain-head");
        assert_eq!(read(&path).unwrap(), None);
        let mut file = HeadFile::open(&path, ChainHead::EMPTY).unwrap();
        assert_eq!(read(&path).unwrap(), Some(ChainHead::EMPTY));
        for position in 1..=5 {
            file.write(ChainHead { global_position: position, hash: [position as u8; 32] }).unwrap();
        }
        assert_eq!(read(&path).unwrap().unwrap().global_position, 5);
        // Tear the newest slot: the previous head is still there.
        let mut bytes = std::fs::read(&path).unwrap();
        // Creation wrote sequence 1; positions 1 to 5 are sequences 2 to 6, each in slot
        // `sequence % 2`: position 5 in slot 0, position 4 in slot 1.
        let (newest_slot, previous_slot) = (0, 1);
        bytes[newest_slot * SLOT_BYTES + 20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().global_position, 4);
        // Both torn: an error, never a silent "empty".
        bytes[previous_slot * SLOT_BYTES + 20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path).is_err());
    }
}
