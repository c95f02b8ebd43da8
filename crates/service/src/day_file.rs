//! The day export and the event proof: self-contained files that an auditor checks without
//! the server or its data (the README's "Day export" documents every byte of them).
//!
//! - An **export line** is the event's JSON envelope in RFC 8785 (JCS) canonical form.
//! - A **leaf hash** is RFC 9162's: SHA-256 of `0x00 ‖ line` (the line's UTF-8 bytes,
//!   without its newline); a seal's `merkle_root` is RFC 9162's Merkle tree hash over the
//!   lines of the events it covers, in log order (SHA-256 of the empty string for none).
//! - A seal is signed (ed25519) over `SEAL_SIGNING_CONTEXT ‖ JCS(seal data without its
//!   "signature" member)`; `previous_seal_hash` is the hex SHA-256 of the previous seal's
//!   export line.

use std::collections::{BTreeMap, HashMap};

use ct_merkle::CtMerkleTree;
use ct_merkle::inclusion::InclusionProof;
use events_schema::{DaySealed, Event, RecordedEvent};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::seal_key::PublicSealKey;

/// The bytes a seal's signature input starts with.
pub const SEAL_SIGNING_CONTEXT: &[u8] = b"gridwatch day seal v2\n";
/// The `format` of an export's header line.
pub const EXPORT_FORMAT: &str = "gridwatch-day-export";
/// The bytes an export's signature line signs start with these.
pub const EXPORT_SIGNING_CONTEXT: &[u8] = b"gridwatch day export v1\n";
/// The `format` of an event proof.
pub const PROOF_FORMAT: &str = "gridwatch-event-proof";

/// JCS (RFC 8785) of `value`. Values made here are plain JSON (no non-finite numbers), so
/// this cannot fail.
fn canonical(value: &Value) -> String {
    serde_json_canonicalizer::to_string(value).expect("plain JSON canonicalises")
}

/// The export line of `event`.
pub fn export_line(event: &RecordedEvent) -> String {
    canonical(&serde_json::to_value(event).expect("an event serialises"))
}

/// Hex SHA-256 of `line`.
pub fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// The RFC 9162 Merkle tree over `lines`, in order.
fn tree(lines: &[String]) -> CtMerkleTree<Sha256, Vec<u8>> {
    let mut tree = CtMerkleTree::new();
    for line in lines {
        tree.push(line.as_bytes().to_vec());
    }
    tree
}

/// Hex of the RFC 9162 Merkle tree hash over `lines`.
pub fn merkle_root(lines: &[String]) -> String {
    hex::encode(tree(lines).root().as_bytes())
}

/// The RFC 9162 leaf hash of `line`, hex.
pub fn leaf_hash(line: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(line.as_bytes());
    hex::encode(hasher.finalize())
}

/// The inclusion proof of lines[index] in the tree over `lines`: the audit path of RFC 9162
/// (sibling hashes from the leaf up), hex.
pub fn inclusion_path(lines: &[String], index: usize) -> Vec<String> {
    let proof = tree(lines).prove_inclusion(index);
    proof.as_bytes().chunks(32).map(hex::encode).collect()
}

/// How many hashes the RFC 9162 (§2.1.3.1) inclusion proof of leaf `index` in a tree of
/// `size` leaves has (`index < size`).
fn audit_path_len(index: u64, size: u64) -> usize {
    if size <= 1 {
        return 0;
    }
    // The largest power of two smaller than `size`.
    let split = 1u64 << (63 - (size - 1).leading_zeros());
    1 + if index < split { audit_path_len(index, split) } else { audit_path_len(index - split, size - split) }
}

/// The bytes a seal's signature is computed over.
pub fn signing_input(seal: &DaySealed) -> Vec<u8> {
    let mut value = serde_json::to_value(seal).expect("a seal serialises");
    if let Value::Object(fields) = &mut value {
        fields.remove("signature");
    }
    let mut input = SEAL_SIGNING_CONTEXT.to_vec();
    input.extend_from_slice(canonical(&value).as_bytes());
    input
}

/// Why a file did not verify: the line (from 1) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FileError {
    pub line: usize,
    pub message: String,
}

fn at(line: usize, message: impl Into<String>) -> FileError {
    FileError { line, message: message.into() }
}

/// What a verified file showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// "export" or "proof".
    pub kind: &'static str,
    pub days: Vec<Date>,
    pub events: usize,
    pub seals: usize,
    /// Events of the file no seal covers (late arrivals not sealed yet), by line.
    pub unsealed_lines: Vec<usize>,
    /// The key ids the seals were checked against, and whether the key was given by the
    /// caller (trusted) or only found in the file.
    pub key_ids: Vec<String>,
    pub key_trusted: bool,
    /// Whether the export's signature line was there and checked (always for a proof).
    pub export_signed: bool,
    /// The key ids the file's seals (a proof's seal) were signed with.
    pub seal_key_ids: Vec<String>,
    /// The key id that signed the export's signature line, when it has one.
    pub export_key_id: Option<String>,
}

/// A public key given to `verify`: the JSON of `GET /api/v1/seal-key`, or the 64 hex digits
/// of the key alone.
pub fn parse_public_key(text: &str) -> Result<PublicSealKey, String> {
    let text = text.trim();
    let hex_key = match serde_json::from_str::<Value>(text) {
        Ok(value) => value["public_key"].as_str().map(str::to_owned).ok_or("no \"public_key\" in the JSON")?,
        Err(_) => text.to_owned(),
    };
    let bytes: [u8; 32] = hex::decode(&hex_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("a public key is 64 hex digits (32 bytes)")?;
    Ok(PublicSealKey::of(&bytes))
}

fn keys_of(value: &Value, line: usize) -> Result<Vec<PublicSealKey>, FileError> {
    let mut keys = Vec::new();
    for key in value.as_array().into_iter().flatten() {
        let public = key["public_key"].as_str().ok_or_else(|| at(line, "a public key without \"public_key\""))?;
        let parsed = parse_public_key(public).map_err(|error| at(line, error))?;
        if key["key_id"].as_str() != Some(parsed.key_id.as_str()) {
            return Err(at(line, "a public key whose key_id does not match it"));
        }
        keys.push(parsed);
    }
    Ok(keys)
}

/// Checks a seal's signature against `keys` (the one named by its `key_id`).
pub fn check_seal_signature(seal: &DaySealed, keys: &[PublicSealKey]) -> Result<(), String> {
    if seal.signature.is_empty() {
        return Err("the seal is not signed (a version-1 seal): it proves nothing offline".into());
    }
    verify_signed(keys, &seal.key_id, &seal.signature, &signing_input(seal), "seal")
}

/// Checks the hex ed25519 `signature` of `message` with the key of `keys` whose id is
/// `key_id`; `what` names the signed thing in the errors.
fn verify_signed(
    keys: &[PublicSealKey],
    key_id: &str,
    signature: &str,
    message: &[u8],
    what: &str,
) -> Result<(), String> {
    let key = keys
        .iter()
        .find(|key| key.key_id == key_id)
        .ok_or_else(|| format!("the {what} was signed with key {key_id}, not a key this check trusts"))?;
    let public: Option<[u8; 32]> = hex::decode(&key.public_key).ok().and_then(|bytes| bytes.try_into().ok());
    let verifying = public
        .and_then(|public| ed25519_dalek::VerifyingKey::from_bytes(&public).ok())
        .ok_or("not an ed25519 public key")?;
    let signature: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("the signature is not 128 hex digits")?;
    verifying
        .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| format!("the {what}'s signature does not verify with key {key_id}"))
}

fn check_signature(seal: &DaySealed, keys: &[PublicSealKey], line: usize) -> Result<(), FileError> {
    check_seal_signature(seal, keys).map_err(|message| at(line, message))
}

/// One parsed line of a file: canonical, an event envelope.
fn parse_line(text: &str, line: usize) -> Result<RecordedEvent, FileError> {
    let value: Value = serde_json::from_str(text).map_err(|error| at(line, format!("not JSON: {error}")))?;
    if canonical(&value) != text {
        return Err(at(line, "not in canonical (RFC 8785) form: the line was changed"));
    }
    let fields: events_schema::EventLine =
        serde_json::from_value(value).map_err(|error| at(line, format!("not an event: {error}")))?;
    let missing = || at(line, "an event line lacks a field of the log");
    let hash: [u8; 32] = fields
        .hash
        .as_deref()
        .and_then(|hash| hex::decode(hash).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(missing)?;
    let event = RecordedEvent {
        global_position: fields.global_position.ok_or_else(missing)?,
        stream_id: fields
            .stream_id
            .as_deref()
            .and_then(|id| events_schema::EntityId::new(id).ok())
            .ok_or_else(missing)?,
        stream_version: fields.stream_version.ok_or_else(missing)?,
        event_id: fields.event_id.ok_or_else(missing)?,
        occurred_at: fields.occurred_at.ok_or_else(missing)?,
        recorded_at: fields.recorded_at.ok_or_else(missing)?,
        actor: fields.actor.ok_or_else(missing)?,
        correlation_id: fields.correlation_id,
        causation_id: fields.causation_id,
        event: Event::from_json(&fields.event_type, fields.data)
            .map_err(|error| at(line, format!("not an event: {error}")))?,
        hash,
    };
    if export_line(&event) != text {
        return Err(at(line, "not an event as gridwatch exports it"));
    }
    Ok(event)
}

fn time_zone_of(header: &Value, line: usize) -> Result<TimeZone, FileError> {
    let name = header["time_zone"].as_str().ok_or_else(|| at(line, "no time_zone"))?;
    TimeZone::get(name).map_err(|_| at(line, format!("unknown time zone {name}")))
}

/// What a check of a file lets through instead of failing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leniency {
    /// Events no seal covers (late arrivals, today) are listed instead of failing.
    pub allow_unsealed: bool,
    /// An export without its signature line (made where no seal key was set) is checked
    /// line by line instead of failing; nothing then proves that no line was left out.
    pub allow_unsigned: bool,
}

impl Leniency {
    /// Everything must be sealed and the export signed.
    pub const STRICT: Leniency = Leniency { allow_unsealed: false, allow_unsigned: false };
}

/// Verifies an export or a proof (told apart by their first line's `format`). With
/// `trusted`, seals must be signed by that key; without, by a key the file names (which
/// proves only that the file is consistent, not who made it), and the export's signature
/// line by a key one of its seals was signed with. `leniency` says what is listed instead of
/// failing the check.
pub fn verify_file(text: &str, trusted: Option<&PublicSealKey>, leniency: Leniency) -> Result<FileReport, FileError> {
    // (`str::lines` would take "\r\n" for a line end.)
    if let Some(line) = text.split('\n').position(|line| line.ends_with('\r')) {
        return Err(at(line + 1, "the line ends with CR LF: lines end with LF alone"));
    }
    let first = text.lines().next().ok_or_else(|| at(1, "the file is empty"))?;
    let header: Value = serde_json::from_str(first).map_err(|error| at(1, format!("not JSON: {error}")))?;
    if header.get("specversion").is_some() {
        // A CloudEvents export: checked as the export its events give, then each CloudEvent
        // against its line.
        let (native, given) = from_cloudevents(text)?;
        let report = verify_file(&native, trusted, leniency)?;
        check_cloudevents(&native, &given)?;
        return Ok(FileReport { kind: "export (CloudEvents)", ..report });
    }
    if canonical(&header) != first {
        return Err(at(1, "not in canonical (RFC 8785) form: the line was changed"));
    }
    let file_keys = keys_of(&header["public_keys"], 1)?;
    let keys = match trusted {
        Some(key) => vec![key.clone()],
        None => file_keys,
    };
    let key_ids = keys.iter().map(|key| key.key_id.clone()).collect();
    match header["format"].as_str() {
        Some(EXPORT_FORMAT) => {
            // The signed last line, when there is one, covers every byte before it.
            let (body, trailer) = split_trailer(text);
            let lines = body.lines().skip(1);
            let mut report = verify_export(&header, lines, &keys, key_ids, trusted.is_some(), leniency.allow_unsealed)?;
            let trailer_line = body.lines().count() + 1;
            match trailer {
                Some(trailer) => {
                    // Without a trusted key, the file must be signed by a key its seals were
                    // signed with: a key added to the header signs nothing.
                    let signers: Vec<PublicSealKey> = match (trusted, report.seal_key_ids.is_empty()) {
                        (None, false) => {
                            keys.iter().filter(|key| report.seal_key_ids.contains(&key.key_id)).cloned().collect()
                        }
                        _ => keys.clone(),
                    };
                    let signer = check_trailer(body, trailer, &signers).map_err(|message| at(trailer_line, message))?;
                    report.export_key_id = Some(signer);
                }
                None if leniency.allow_unsigned => report.export_signed = false,
                None => {
                    return Err(at(
                        trailer_line,
                        "the export has no signature line, so nothing proves that no line (or seal) was \
                         left out or added; --allow-unsigned checks it line by line without",
                    ));
                }
            }
            Ok(report)
        }
        Some(PROOF_FORMAT) => verify_proof(&header, &keys, key_ids, trusted.is_some()),
        other => Err(at(1, format!("not a gridwatch export or proof (format {other:?})"))),
    }
}

/// The bytes an export's signature line signs (`EXPORT_SIGNING_CONTEXT`, then the SHA-256 of
/// every byte before that line).
fn export_signing_input(digest: &[u8]) -> Vec<u8> {
    let mut input = EXPORT_SIGNING_CONTEXT.to_vec();
    input.extend_from_slice(digest);
    input
}

/// The signature line of an export whose lines before it are `body`.
pub fn export_trailer(body: &str, key: &crate::seal_key::SealKey) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let trailer = serde_json::json!({
        "export_sha256": hex::encode(digest),
        "key_id": key.public().key_id,
        "signature": hex::encode(key.sign(&export_signing_input(&digest))),
    });
    canonical(&trailer)
}

/// `text` without its signature line, and that line (when the last line is one).
fn split_trailer(text: &str) -> (&str, Option<&str>) {
    let without_newline = text.strip_suffix('\n').unwrap_or(text);
    let start = without_newline.rfind('\n').map_or(0, |at| at + 1);
    let last = &without_newline[start..];
    match serde_json::from_str::<Value>(last) {
        Ok(value) if value.get("export_sha256").is_some() => (&text[..start], Some(last)),
        _ => (text, None),
    }
}

/// Checks the signature line `trailer` of `body` against `keys`; the key id that signed it.
fn check_trailer(body: &str, trailer: &str, keys: &[PublicSealKey]) -> Result<String, String> {
    let value: Value = serde_json::from_str(trailer).map_err(|error| format!("not JSON: {error}"))?;
    if canonical(&value) != trailer {
        return Err("not in canonical (RFC 8785) form: the line was changed".into());
    }
    let digest = Sha256::digest(body.as_bytes());
    if value["export_sha256"].as_str() != Some(hex::encode(digest).as_str()) {
        return Err("the file is not the one that was signed: a line was removed, added or changed \
                    (the header, a seal's envelope, or a whole seal or day)"
            .into());
    }
    let key_id = value["key_id"].as_str().unwrap_or_default();
    let signature = value["signature"].as_str().unwrap_or_default();
    verify_signed(keys, key_id, signature, &export_signing_input(&digest), "export")?;
    Ok(key_id.to_owned())
}

fn verify_export<'a>(
    header: &Value,
    lines: impl Iterator<Item = &'a str>,
    keys: &[PublicSealKey],
    key_ids: Vec<String>,
    key_trusted: bool,
    allow_unsealed: bool,
) -> Result<FileReport, FileError> {
    if header["version"] != 1 {
        return Err(at(1, "an export version this gridwatch does not know"));
    }
    let time_zone = time_zone_of(header, 1)?;
    let day = |name: &str| header[name].as_str().and_then(|d| d.parse::<Date>().ok());
    let (from, to) = day("from").zip(day("to")).ok_or_else(|| at(1, "no from/to days"))?;
    // Per day: its event lines (position, line number, text) and its seals.
    let mut events: BTreeMap<Date, Vec<(u64, usize, String)>> = BTreeMap::new();
    // Per day: each seal's line number, the seal, and the leaf hashes listed after it.
    let mut seals: BTreeMap<Date, Vec<(usize, DaySealed, Vec<String>)>> = BTreeMap::new();
    // Position -> (line number, text) of each seal.
    let mut seal_lines: HashMap<u64, (usize, String)> = HashMap::new();
    // Lines come ordered by (day, events before seals, position).
    let mut last: Option<(Date, u8, u64)> = None;
    let mut pending_leaves: Option<usize> = None;
    for (index, text) in lines.enumerate() {
        let number = index + 2;
        if let Some(seal_line) = pending_leaves.take() {
            // The leaf hashes of the seal just read, one per covered event.
            let value: Value = serde_json::from_str(text).map_err(|e| at(number, format!("not JSON: {e}")))?;
            if canonical(&value) != text || value.as_object().is_none_or(|fields| fields.len() != 1) {
                return Err(at(number, "not the canonical leaf-hash line of the seal before it: the line was changed"));
            }
            let leaves: Vec<String> = value["leaf_hashes"]
                .as_array()
                .ok_or_else(|| at(number, "expected the leaf hashes of the seal on the line before"))?
                .iter()
                .map(|leaf| leaf.as_str().map(str::to_owned).ok_or_else(|| at(number, "a leaf hash is a string")))
                .collect::<Result<_, _>>()?;
            let day_seals = seals.values_mut().next_back().expect("a seal was read");
            let (line, ..) = day_seals.last().expect("a seal was read");
            debug_assert_eq!(*line, seal_line);
            day_seals.last_mut().expect("a seal was read").2 = leaves;
            continue;
        }
        let event = parse_line(text, number)?;
        let (event_day, kind) = match &event.event {
            Event::DaySealed(seal) => (seal.local_day, 1),
            _ => (projections::local_day(event.occurred_at, &time_zone), 0),
        };
        if event_day < from || event_day > to {
            return Err(at(number, format!("an event of {event_day}, outside the export's {from}..{to}")));
        }
        let key = (event_day, kind, event.global_position);
        if last.is_some_and(|last| key <= last) {
            return Err(at(number, "out of order: lines go by day, then events before seals, then position"));
        }
        last = Some(key);
        match &event.event {
            Event::DaySealed(seal) => {
                if seal.time_zone != time_zone.iana_name().unwrap_or_default() {
                    return Err(at(number, "a seal of days counted in another time zone"));
                }
                seal_lines.insert(event.global_position, (number, text.to_owned()));
                let seal = seal.clone();
                seals.entry(event_day).or_default().push((number, seal, Vec::new()));
                pending_leaves = Some(number);
            }
            _ => events.entry(event_day).or_default().push((event.global_position, number, text.to_owned())),
        }
    }
    if let Some(seal_line) = pending_leaves {
        return Err(at(seal_line + 1, "the file ends before the seal's leaf hashes"));
    }
    let mut unsealed_lines = Vec::new();
    let mut seal_count = 0;
    let mut seal_key_ids: Vec<String> = Vec::new();
    let mut event_count = 0;
    let mut days: Vec<Date> = events.keys().chain(seals.keys()).copied().collect();
    days.sort();
    days.dedup();
    for day in &days {
        let day_events = events.remove(day).unwrap_or_default();
        event_count += day_events.len();
        let mut covered_until = 0;
        for (expected_sequence, (line, seal, leaves)) in (1..).zip(seals.remove(day).unwrap_or_default()) {
            seal_count += 1;
            if seal.sequence != expected_sequence {
                return Err(at(
                    line,
                    format!("seal {} of {day}, where seal {expected_sequence} was due", seal.sequence),
                ));
            }
            check_signature(&seal, keys, line)?;
            if !seal_key_ids.contains(&seal.key_id) {
                seal_key_ids.push(seal.key_id.clone());
            }
            let covered: Vec<&(u64, usize, String)> = day_events
                .iter()
                .filter(|(position, ..)| *position > covered_until && *position <= seal.chain_head_position)
                .collect();
            if leaves.len() as u64 != seal.event_count {
                return Err(at(
                    line + 1,
                    format!("{} leaf hashes for a seal of {} events", leaves.len(), seal.event_count),
                ));
            }
            if (covered.len() as u64) < seal.event_count {
                return Err(at(
                    line,
                    format!(
                        "seal {} of {day} covers {} events, the file has {} of them: a line was removed",
                        seal.sequence,
                        seal.event_count,
                        covered.len()
                    ),
                ));
            }
            let lines: Vec<String> = covered.iter().map(|(_, _, text)| text.clone()).collect();
            let computed: Vec<String> = lines.iter().map(|text| leaf_hash(text)).collect();
            if merkle_root(&lines) == seal.merkle_root {
                // The events are the sealed ones; the listed leaf hashes must be theirs.
                if computed != leaves {
                    return Err(at(line + 1, "these leaf hashes are not those of the events the seal covers"));
                }
            } else {
                // Some event is not the sealed one: the listed leaf hashes (unsigned) name
                // which, unless they were changed with it.
                let first_unlike =
                    covered.iter().zip(&computed).enumerate().find(|(k, (_, hash))| leaves.get(*k) != Some(hash));
                return Err(match first_unlike {
                    Some((_, ((_, event_line, _), _))) => at(
                        *event_line,
                        format!(
                            "this event is not the one seal {} of {day} covers here: changed, moved or inserted",
                            seal.sequence
                        ),
                    ),
                    None => at(
                        line + 1,
                        "the events and these leaf hashes do not make the sealed Merkle root: changed together",
                    ),
                });
            }
            let first = covered.first().map_or(0, |(position, ..)| *position);
            let last = covered.last().map_or(0, |(position, ..)| *position);
            if (first, last) != (seal.first_global_position, seal.last_global_position) {
                return Err(at(line, "the first and last positions do not match the events this seal covers"));
            }
            if let Some((previous_line, previous)) = seal_lines.get(&seal.previous_seal_position) {
                // The next seal signed the previous seal's whole line; that line's own
                // signature covers only its data, so a change to its envelope shows here.
                if line_hash(previous) != seal.previous_seal_hash {
                    return Err(at(
                        *previous_line,
                        format!("this seal's line is not the one the seal on line {line} follows: changed"),
                    ));
                }
            }
            covered_until = seal.chain_head_position;
        }
        unsealed_lines
            .extend(day_events.iter().filter(|(position, ..)| *position > covered_until).map(|(_, line, _)| *line));
    }
    if let (false, Some(first)) = (allow_unsealed, unsealed_lines.first()) {
        return Err(at(
            *first,
            format!(
                "{} event(s) of the file are covered by no seal (late arrivals not sealed yet?); \
                 --allow-unsealed lists them instead",
                unsealed_lines.len()
            ),
        ));
    }
    Ok(FileReport {
        kind: "export",
        days,
        events: event_count,
        seals: seal_count,
        unsealed_lines,
        key_ids,
        key_trusted,
        export_signed: true,
        seal_key_ids,
        export_key_id: None,
    })
}

fn verify_proof(
    proof: &Value,
    keys: &[PublicSealKey],
    key_ids: Vec<String>,
    key_trusted: bool,
) -> Result<FileReport, FileError> {
    if proof["version"] != 1 {
        return Err(at(1, "a proof version this gridwatch does not know"));
    }
    let time_zone = time_zone_of(proof, 1)?;
    let text = |name: &str| proof[name].as_str().ok_or_else(|| at(1, format!("no \"{name}\"")));
    let event_text = text("event")?;
    let seal_text = text("seal")?;
    let event = parse_line(event_text, 1)?;
    let seal_event = parse_line(seal_text, 1)?;
    let Event::DaySealed(seal) = &seal_event.event else { return Err(at(1, "\"seal\" is not a DaySealed event")) };
    check_signature(seal, keys, 1)?;
    let day = projections::local_day(event.occurred_at, &time_zone);
    if day != seal.local_day || seal.time_zone != time_zone.iana_name().unwrap_or_default() {
        return Err(at(1, "the event is not of the day the seal seals"));
    }
    if event.global_position < seal.first_global_position || event.global_position > seal.last_global_position {
        return Err(at(1, "the event's position is outside the seal's"));
    }
    let index = proof["leaf_index"].as_u64().ok_or_else(|| at(1, "no leaf_index"))? as usize;
    let size = proof["tree_size"].as_u64().ok_or_else(|| at(1, "no tree_size"))?;
    if size != seal.event_count || index as u64 >= size {
        return Err(at(1, "leaf_index and tree_size do not fit the seal"));
    }
    let hashes = proof["path"].as_array().ok_or_else(|| at(1, "no path"))?;
    if hashes.len() != audit_path_len(index as u64, size) {
        return Err(at(
            1,
            format!(
                "a path of {} hashes, where leaf {index} of {size} has {}",
                hashes.len(),
                audit_path_len(index as u64, size)
            ),
        ));
    }
    let mut path = Vec::new();
    for hash in hashes {
        let bytes = hash.as_str().and_then(|hash| hex::decode(hash).ok()).filter(|bytes| bytes.len() == 32);
        path.extend(bytes.ok_or_else(|| at(1, "a path hash is 64 hex digits"))?);
    }
    let root: [u8; 32] = hex::decode(&seal.merkle_root)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| at(1, "the seal's merkle_root is not 64 hex digits"))?;
    let root = ct_merkle::RootHash::<Sha256>::new(root.into(), size as usize);
    root.verify_inclusion(&event_text.as_bytes().to_vec(), index, &InclusionProof::from_bytes(path))
        .map_err(|_| at(1, "the inclusion proof does not lead to the seal's Merkle root"))?;
    Ok(FileReport {
        kind: "proof",
        days: vec![day],
        events: 1,
        seals: 1,
        unsealed_lines: Vec::new(),
        key_ids,
        key_trusted,
        export_signed: true,
        seal_key_ids: vec![seal.key_id.clone()],
        export_key_id: None,
    })
}

/// The `type` prefix of gridwatch's CloudEvents.
const CLOUDEVENT_TYPE_PREFIX: &str = "gridwatch.";
const CLOUDEVENT_HEADER_TYPE: &str = "gridwatch.export.header";
const CLOUDEVENT_LEAVES_TYPE: &str = "gridwatch.seal.leaves";
const CLOUDEVENT_SIGNATURE_TYPE: &str = "gridwatch.export.signature";

/// An export in CloudEvents form (JSON event format, structured mode): the same lines, each
/// as one CloudEvent (see the README's "Day export"). Every line of `native` is one of
/// [`Service::export_days`](crate::Service::export_days).
pub fn to_cloudevents(native: &str) -> Result<String, FileError> {
    let lines: Vec<&str> = native.lines().collect();
    let header: Value = serde_json::from_str(lines.first().ok_or_else(|| at(1, "the file is empty"))?)
        .map_err(|error| at(1, format!("not JSON: {error}")))?;
    let time_zone = time_zone_of(&header, 1)?;
    // Which seal covers each event: (day, chain head, seal position, root) per seal.
    let mut seals: BTreeMap<Date, Vec<(u64, u64, String)>> = BTreeMap::new();
    for (index, line) in lines.iter().enumerate().skip(1) {
        let value: Value = serde_json::from_str(line).map_err(|error| at(index + 1, format!("not JSON: {error}")))?;
        if value["event_type"] == "DaySealed" {
            let day = value["data"]["local_day"].as_str().and_then(|d| d.parse::<Date>().ok());
            let head = value["data"]["chain_head_position"].as_u64();
            let (Some(day), Some(head)) = (day, head) else { return Err(at(index + 1, "a seal without its day")) };
            let position = value["global_position"].as_u64().unwrap_or(0);
            let root = value["data"]["merkle_root"].as_str().unwrap_or_default().to_owned();
            seals.entry(day).or_default().push((head, position, root));
        }
    }
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        let value: Value = serde_json::from_str(line).map_err(|error| at(index + 1, format!("not JSON: {error}")))?;
        let event = if index == 0 {
            serde_json::json!({
                "specversion": "1.0",
                "id": export_id(&value),
                "source": "/gridwatch",
                "type": CLOUDEVENT_HEADER_TYPE,
                "datacontenttype": "application/json",
                "data": value,
            })
        } else if value.get("leaf_hashes").is_some() || value.get("export_sha256").is_some() {
            let (kind, name) = match value.get("leaf_hashes") {
                Some(_) => (CLOUDEVENT_LEAVES_TYPE, "leaves"),
                None => (CLOUDEVENT_SIGNATURE_TYPE, "signature"),
            };
            serde_json::json!({
                "specversion": "1.0",
                // Unique to this export: the header's id, then the line.
                "id": format!("{}-{name}-{}", export_id(&header), index + 1),
                "source": "/gridwatch",
                "type": kind,
                "datacontenttype": "application/json",
                "data": value,
            })
        } else {
            let mut event = cloudevent_of_envelope(&value, line);
            if value["event_type"] != "DaySealed" {
                let day = value["occurred_at"]
                    .as_str()
                    .and_then(|at| at.parse::<events_schema::Timestamp>().ok())
                    .map(|at| projections::local_day(at, &time_zone));
                let position = value["global_position"].as_u64().unwrap_or(0);
                let mut covered_from = 0;
                for (head, seal_position, root) in day.and_then(|day| seals.get(&day)).into_iter().flatten() {
                    if position > covered_from && position <= *head {
                        event["gwsealposition"] = Value::String(seal_position.to_string());
                        event["gwmerkleroot"] = Value::String(root.clone());
                        break;
                    }
                    covered_from = *head;
                }
            }
            event
        };
        out.push_str(&canonical(&event));
        out.push('\n');
    }
    Ok(out)
}

/// The CloudEvent id of an export's header: its days and the chain head it was made at.
fn export_id(header: &Value) -> String {
    format!(
        "export-{}-{}-{}",
        header["from"].as_str().unwrap_or_default(),
        header["to"].as_str().unwrap_or_default(),
        header["chain_head_position"]
    )
}

/// The CloudEvent of one event envelope (its export line `line`): the CloudEvents context
/// attributes from the envelope, and the rest as `gw…` extension attributes (integers as
/// strings: CloudEvents integers are 32-bit).
fn cloudevent_of_envelope(envelope: &Value, line: &str) -> Value {
    let text = |name: &str| envelope[name].clone();
    let number = |name: &str| Value::String(envelope[name].as_u64().unwrap_or(0).to_string());
    let stream = envelope["stream_id"].as_str().unwrap_or_default();
    let mut event = serde_json::json!({
        "specversion": "1.0",
        "id": text("event_id"),
        "source": format!("/gridwatch/streams/{stream}"),
        "type": format!("{CLOUDEVENT_TYPE_PREFIX}{}", envelope["event_type"].as_str().unwrap_or_default()),
        "subject": stream,
        "time": text("occurred_at"),
        "datacontenttype": "application/json",
        "data": text("data"),
        "gwposition": number("global_position"),
        "gwstreamversion": number("stream_version"),
        "gwschemaversion": number("schema_version"),
        "gwrecordedat": text("recorded_at"),
        "gwactor": text("actor"),
        "gwhash": text("hash"),
    });
    for (attribute, field) in [("gwcorrelationid", "correlation_id"), ("gwcausationid", "causation_id")] {
        if envelope[field].is_string() {
            event[attribute] = text(field);
        }
    }
    if envelope["event_type"] != "DaySealed" {
        event["gwleaf"] = Value::String(leaf_hash(line));
    }
    event
}

/// The export lines of a CloudEvents export (the inverse of [`to_cloudevents`]), checking
/// that each CloudEvent is exactly the one its line gives.
fn from_cloudevents(text: &str) -> Result<(String, Vec<&str>), FileError> {
    let mut native = Vec::new();
    let mut given = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let event: Value = serde_json::from_str(line).map_err(|error| at(number, format!("not JSON: {error}")))?;
        if event["specversion"] != "1.0" {
            return Err(at(number, "not a CloudEvent of spec version 1.0"));
        }
        let kind = event["type"].as_str().unwrap_or_default();
        let value = if [CLOUDEVENT_HEADER_TYPE, CLOUDEVENT_LEAVES_TYPE, CLOUDEVENT_SIGNATURE_TYPE].contains(&kind) {
            event["data"].clone()
        } else {
            let event_type = kind
                .strip_prefix(CLOUDEVENT_TYPE_PREFIX)
                .ok_or_else(|| at(number, format!("not a gridwatch event type: {kind:?}")))?;
            let number_of = |name: &str| -> Result<Value, FileError> {
                event[name]
                    .as_str()
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(Value::from)
                    .ok_or_else(|| at(number, format!("{name} is not a whole number")))
            };
            serde_json::json!({
                "actor": event["gwactor"],
                "causation_id": event.get("gwcausationid").cloned().unwrap_or(Value::Null),
                "correlation_id": event.get("gwcorrelationid").cloned().unwrap_or(Value::Null),
                "data": event["data"],
                "event_id": event["id"],
                "event_type": event_type,
                "global_position": number_of("gwposition")?,
                "hash": event["gwhash"],
                "occurred_at": event["time"],
                "recorded_at": event["gwrecordedat"],
                "schema_version": number_of("gwschemaversion")?,
                "stream_id": event["subject"],
                "stream_version": number_of("gwstreamversion")?,
            })
        };
        native.push(canonical(&value));
        given.push(line);
    }
    let native = native.join("\n") + "\n";
    Ok((native, given))
}

/// Every CloudEvent must be, byte for byte, the canonical (RFC 8785) one its export line
/// gives (the derived extension attributes too), so that no part of a CloudEvent goes
/// unchecked and no line reads differently to another JSON parser (a repeated member, say).
fn check_cloudevents(native: &str, given: &[&str]) -> Result<(), FileError> {
    let expected = to_cloudevents(native)?;
    for (index, (expected, given)) in expected.lines().zip(given).enumerate() {
        if expected != *given {
            return Err(at(
                index + 1,
                "this CloudEvent is not, byte for byte in canonical (RFC 8785) form, the one its event gives: changed",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_path_length_is_the_one_the_tree_proves_with() {
        for size in 1..70usize {
            let lines: Vec<String> = (0..size).map(|k| format!("line {k}")).collect();
            for index in 0..size {
                assert_eq!(
                    inclusion_path(&lines, index).len(),
                    audit_path_len(index as u64, size as u64),
                    "{index} of {size}"
                );
            }
        }
    }
}
