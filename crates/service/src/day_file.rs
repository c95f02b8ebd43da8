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
    let key = keys
        .iter()
        .find(|key| key.key_id == seal.key_id)
        .ok_or_else(|| format!("the seal was signed with key {}, not a key this check trusts", seal.key_id))?;
    let public: Option<[u8; 32]> = hex::decode(&key.public_key).ok().and_then(|bytes| bytes.try_into().ok());
    let verifying = public
        .and_then(|public| ed25519_dalek::VerifyingKey::from_bytes(&public).ok())
        .ok_or("not an ed25519 public key")?;
    let signature: [u8; 64] = hex::decode(&seal.signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("the signature is not 128 hex digits")?;
    verifying
        .verify_strict(&signing_input(seal), &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| format!("the seal's signature does not verify with key {}", seal.key_id))
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

/// Verifies an export or a proof (told apart by their first line's `format`). With
/// `trusted`, seals must be signed by that key; without, by a key the file names (which
/// proves only that the file is consistent, not who made it). With `allow_unsealed`, events
/// no seal covers are listed instead of failing the check.
pub fn verify_file(text: &str, trusted: Option<&PublicSealKey>, allow_unsealed: bool) -> Result<FileReport, FileError> {
    let first = text.lines().next().ok_or_else(|| at(1, "the file is empty"))?;
    let header: Value = serde_json::from_str(first).map_err(|error| at(1, format!("not JSON: {error}")))?;
    if header.get("specversion").is_some() {
        // A CloudEvents export: checked as the export its events give.
        let native = from_cloudevents(text)?;
        return verify_file(&native, trusted, allow_unsealed)
            .map(|report| FileReport { kind: "export (CloudEvents)", ..report });
    }
    let mut lines = text.lines();
    lines.next();
    let file_keys = keys_of(&header["public_keys"], 1)?;
    let keys = match trusted {
        Some(key) => vec![key.clone()],
        None => file_keys,
    };
    let key_ids = keys.iter().map(|key| key.key_id.clone()).collect();
    match header["format"].as_str() {
        Some(EXPORT_FORMAT) => verify_export(&header, lines, &keys, key_ids, trusted.is_some(), allow_unsealed),
        Some(PROOF_FORMAT) => verify_proof(&header, &keys, key_ids, trusted.is_some()),
        other => Err(at(1, format!("not a gridwatch export or proof (format {other:?})"))),
    }
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
    let mut seal_lines: HashMap<u64, String> = HashMap::new();
    // Lines come ordered by (day, events before seals, position).
    let mut last: Option<(Date, u8, u64)> = None;
    let mut pending_leaves: Option<usize> = None;
    for (index, text) in lines.enumerate() {
        let number = index + 2;
        if let Some(seal_line) = pending_leaves.take() {
            // The leaf hashes of the seal just read, one per covered event.
            let value: Value = serde_json::from_str(text).map_err(|e| at(number, format!("not JSON: {e}")))?;
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
                seal_lines.insert(event.global_position, text.to_owned());
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
            // Each covered line against its leaf hash: a changed or inserted line is named.
            for (k, (_, event_line, text)) in covered.iter().enumerate() {
                if leaves.get(k) != Some(&leaf_hash(text)) {
                    return Err(at(
                        *event_line,
                        format!(
                            "this event is not the one seal {} of {day} covers here: changed, moved or inserted",
                            seal.sequence
                        ),
                    ));
                }
            }
            let lines: Vec<String> = covered.iter().map(|(_, _, text)| text.clone()).collect();
            if merkle_root(&lines) != seal.merkle_root {
                return Err(at(line, "the Merkle root does not match the events this seal covers"));
            }
            let first = covered.first().map_or(0, |(position, ..)| *position);
            let last = covered.last().map_or(0, |(position, ..)| *position);
            if (first, last) != (seal.first_global_position, seal.last_global_position) {
                return Err(at(line, "the first and last positions do not match the events this seal covers"));
            }
            if let Some(previous) = seal_lines.get(&seal.previous_seal_position) {
                if line_hash(previous) != seal.previous_seal_hash {
                    return Err(at(line, "previous_seal_hash is not the hash of the previous seal's line"));
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
    let mut path = Vec::new();
    for hash in proof["path"].as_array().ok_or_else(|| at(1, "no path"))? {
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
    })
}

/// The `type` prefix of gridwatch's CloudEvents.
const CLOUDEVENT_TYPE_PREFIX: &str = "gridwatch.";
const CLOUDEVENT_HEADER_TYPE: &str = "gridwatch.export.header";
const CLOUDEVENT_LEAVES_TYPE: &str = "gridwatch.seal.leaves";

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
                "id": format!("export-{}-{}-{}", value["from"].as_str().unwrap_or(""), value["to"].as_str().unwrap_or(""), value["chain_head_position"]),
                "source": "/gridwatch",
                "type": CLOUDEVENT_HEADER_TYPE,
                "datacontenttype": "application/json",
                "data": value,
            })
        } else if value.get("leaf_hashes").is_some() {
            serde_json::json!({
                "specversion": "1.0",
                "id": format!("leaves-{index}"),
                "source": "/gridwatch",
                "type": CLOUDEVENT_LEAVES_TYPE,
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
fn from_cloudevents(text: &str) -> Result<String, FileError> {
    let mut native = Vec::new();
    let mut given = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let event: Value = serde_json::from_str(line).map_err(|error| at(number, format!("not JSON: {error}")))?;
        if event["specversion"] != "1.0" {
            return Err(at(number, "not a CloudEvent of spec version 1.0"));
        }
        let kind = event["type"].as_str().unwrap_or_default();
        let value = if kind == CLOUDEVENT_HEADER_TYPE || kind == CLOUDEVENT_LEAVES_TYPE {
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
        given.push(event);
    }
    let native = native.join("\n") + "\n";
    // Every attribute must be the one the export line gives (the extension attributes that
    // are derived, too), so that no part of a CloudEvent goes unchecked.
    let expected = to_cloudevents(&native)?;
    for (index, (expected, given)) in expected.lines().zip(&given).enumerate() {
        let expected: Value = serde_json::from_str(expected).expect("made here");
        if &expected != given {
            return Err(at(index + 1, "this CloudEvent's attributes are not those of its event (changed?)"));
        }
    }
    Ok(native)
}
