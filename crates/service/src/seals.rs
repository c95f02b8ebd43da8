//! Day seals, the day export and event proofs (their format is in [`crate::day_file`]).

use std::collections::BTreeMap;

use events_schema::{DaySealed, EntityId, Event, NewEvent, RecordedEvent, Timestamp};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use store::{EventStore, ExpectedVersion, Rejection, StoreError};
use uuid::Uuid;

use crate::day_file::{self, EXPORT_FORMAT, PROOF_FORMAT};
use crate::seal_key::{PublicSealKey, SealKey};
use crate::{CONFLICT_RETRIES_MAX, Service, ServiceError};

/// Where the seals are, folded with the views: each day's seals, the last seal of the log,
/// and the last position of an event of each day (by its own field time), so that a day
/// with events its seals do not cover is found without reading it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SealIndex {
    /// Day -> its seals, in log order.
    by_day: BTreeMap<Date, Vec<SealPlace>>,
    last: Option<u64>,
    last_event_by_day: BTreeMap<Date, u64>,
}

/// The event id of seal `sequence` of local `day` in `time_zone` in the log whose first
/// record has hash `first_hash`: the same on every node, so that two nodes sealing the same
/// day at once make one seal (the store's idempotency by event id, and JetStream's
/// `Nats-Msg-Id`, answer the second with the first), never two seals with one sequence; and
/// another once the deployment's time zone changes (its days are other days, sealed anew).
/// A UUIDv7 like every event id: its time is the day's start (UTC), its other bits blake3 of
/// the log, time zone, day and sequence.
pub fn seal_event_id(first_hash: &[u8; 32], time_zone: &str, day: Date, sequence: u32) -> Uuid {
    let mut hasher = blake3::Hasher::new_derive_key("gridwatch 2026 day seal event id");
    hasher.update(first_hash);
    hasher.update(&(time_zone.len() as u64).to_be_bytes());
    hasher.update(time_zone.as_bytes());
    hasher.update(day.to_string().as_bytes());
    hasher.update(&sequence.to_be_bytes());
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&hasher.finalize().as_bytes()[..10]);
    let millis = day.to_zoned_datetime(jiff::tz::TimeZone::UTC).map_or(0, |start| start.timestamp().as_millisecond());
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(millis).unwrap_or(0), &bits).into_uuid()
}

impl SealIndex {
    pub fn apply(&mut self, event: &RecordedEvent, time_zone: &TimeZone) {
        match &event.event {
            // Only gridwatch's own seals, of days in this time zone, made after what they
            // cover: a seal that came in another way (an import before raw appends of seals
            // were refused) could claim to cover events it does not. `verify_seals` checks
            // the ones taken.
            Event::DaySealed(seal)
                if event.stream_id == seals_stream()
                    && event.actor.as_str() == SEALER
                    && seal.chain_head_position < event.global_position
                    && Some(seal.time_zone.as_str()) == time_zone.iana_name() =>
            {
                self.by_day.entry(seal.local_day).or_default().push((
                    event.global_position,
                    seal.sequence,
                    seal.chain_head_position,
                ));
                self.last = Some(event.global_position);
            }
            // A seal is never itself sealed.
            Event::DaySealed(_) => {}
            _ => {
                self.last_event_by_day
                    .insert(projections::local_day(event.occurred_at, time_zone), event.global_position);
            }
        }
    }

    /// The days with events after their last seal's chain head (or never sealed), up to
    /// `until` (exclusive).
    fn days_to_seal(&self, until: Date) -> Vec<Date> {
        self.last_event_by_day
            .range(..until)
            .filter(|(day, last)| {
                let sealed_until = self.by_day.get(day).and_then(|seals| seals.last()).map_or(0, |(_, _, head)| *head);
                **last > sealed_until
            })
            .map(|(day, _)| *day)
            .collect()
    }
}

/// Where a seal is: (its position, its sequence, the chain head position it covers up to).
type SealPlace = (u64, u32, u64);

/// One seal of a day, as the API lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SealRecord {
    pub global_position: u64,
    pub event_id: Uuid,
    pub recorded_at: Timestamp,
    #[serde(flatten)]
    pub seal: DaySealed,
}

/// A day's seals and what they leave uncovered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DaySeals {
    pub day: Date,
    pub seals: Vec<SealRecord>,
    /// Events of the day recorded after its last seal (all of them when it has none).
    pub unsealed_events: u64,
}

/// The actor of every seal.
const SEALER: &str = "gridwatch";

/// The stream seals are appended to.
fn seals_stream() -> EntityId {
    EntityId::new("seals").expect("a valid id")
}

impl<S: EventStore> Service<S> {
    /// The hash of the export line of the event at `position` (what a seal names its
    /// previous seal by), if the log holds one there.
    async fn line_hash_at(&self, position: u64) -> Result<Option<String>, StoreError> {
        Ok(self.event_at(position).await?.map(|event| day_file::line_hash(&day_file::export_line(&event))))
    }

    /// The events of local `day` (by field time) the log holds up to `at`, seals left out,
    /// in log order.
    async fn sealable_events(&self, day: Date, at: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self
            .day_events(day, |event| {
                (event.global_position <= at && !matches!(event.event, Event::DaySealed(_))).then_some(event)
            })
            .await?;
        events.sort_by_key(|event| event.global_position);
        Ok(events)
    }

    /// Seals local `day` with `key`: its first seal, or an addendum covering the day's events
    /// recorded since its last seal. `None` when the day has a seal and nothing new.
    pub async fn seal_day(&self, day: Date, key: &SealKey) -> Result<Option<RecordedEvent>, ServiceError> {
        let today = projections::local_day(Timestamp::now(), &self.time_zone);
        if day > today {
            return Err(ServiceError::Rejected(Rejection::Invalid(format!(
                "{day} has not begun yet (today is {today}): only a day that has begun can be sealed"
            ))));
        }
        let _turn = self.stream_locks.lock(&seals_stream()).await;
        for attempt in 0..=CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                tokio::time::sleep(crate::conflict_backoff(attempt)).await;
            }
            let head = self.catch_up().await?;
            let (previous_of_day, previous, version) = {
                let views = self.views.read().await;
                let previous_of_day = views.seals.by_day.get(&day).and_then(|seals| seals.last()).copied();
                (previous_of_day, views.seals.last, views.stream_versions.get(&seals_stream()).copied().unwrap_or(0))
            };
            let covered_from = previous_of_day.map_or(0, |(_, _, head)| head);
            let mut events = self.sealable_events(day, head).await?;
            events.retain(|event| event.global_position > covered_from);
            if events.is_empty() && previous_of_day.is_some() {
                return Ok(None);
            }
            let lines: Vec<String> = events.iter().map(day_file::export_line).collect();
            let previous_seal_hash = self.line_hash_at(previous.unwrap_or(0)).await?.unwrap_or_default();
            let mut seal = DaySealed {
                local_day: day,
                time_zone: self.time_zone.iana_name().unwrap_or_default().to_owned(),
                sequence: previous_of_day.map_or(1, |(_, sequence, _)| sequence.saturating_add(1)),
                event_count: events.len() as u64,
                first_global_position: events.first().map_or(0, |event| event.global_position),
                last_global_position: events.last().map_or(0, |event| event.global_position),
                merkle_root: day_file::merkle_root(&lines),
                chain_head_position: head,
                chain_hash: hex::encode(self.hash_at(head).await?),
                previous_seal_position: previous.unwrap_or(0),
                previous_seal_hash,
                key_id: key.public().key_id,
                signature: String::new(),
            };
            seal.signature = hex::encode(key.sign(&day_file::signing_input(&seal)));
            let new = NewEvent {
                event_id: seal_event_id(&self.hash_at(1).await?, &seal.time_zone, day, seal.sequence),
                occurred_at: Timestamp::now(),
                actor: EntityId::new(SEALER).expect("a valid id"),
                correlation_id: None,
                causation_id: None,
                event: seal.into(),
            };
            // The seals stream at the version read with the index: two sealers cannot both
            // seal the same state.
            match self.store.append(&seals_stream(), ExpectedVersion::Exact(version), vec![new]).await? {
                Ok(committed) => {
                    self.catch_up().await?;
                    let position = committed.events[0].global_position;
                    return Ok(self.event_at(position).await?);
                }
                Err(Rejection::WrongExpectedVersion { .. }) => continue,
                Err(rejection) => return Err(ServiceError::Rejected(rejection)),
            }
        }
        Err(ServiceError::TooManyConflicts)
    }

    /// Seals every day that ended more than `grace` before `now` and has events no seal
    /// covers. Returns the seals made.
    pub async fn seal_ended_days(
        &self,
        key: &SealKey,
        now: Timestamp,
        grace: std::time::Duration,
    ) -> Result<Vec<RecordedEvent>, ServiceError> {
        self.catch_up().await?;
        let grace = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
        let moment = Timestamp::from_microsecond(now.as_microsecond().saturating_sub(grace)).unwrap_or(now);
        // A day has ended when the moment is on a later day.
        let today = projections::local_day(moment, &self.time_zone);
        let days = self.views.read().await.seals.days_to_seal(today);
        let mut made = Vec::new();
        for day in days {
            made.extend(self.seal_day(day, key).await?);
        }
        Ok(made)
    }

    /// The seals of local days `from..=to` made by position `at`, and how many events of
    /// `period` (those days' events, as a report reads them) they leave uncovered.
    pub(crate) async fn period_seals(
        &self,
        from: Date,
        to: Date,
        at: u64,
        period: &[crate::days::DayStep],
    ) -> Result<(Vec<projections::DaySealLine>, u64), StoreError> {
        let by_day: Vec<(Date, Vec<SealPlace>)> =
            self.views.read().await.seals.by_day.range(from..=to).map(|(day, seals)| (*day, seals.clone())).collect();
        let mut lines = Vec::new();
        let mut covered: BTreeMap<Date, u64> = BTreeMap::new();
        for (day, seals) in by_day {
            for (position, _, chain_head) in seals.into_iter().filter(|(position, ..)| *position <= at) {
                let Some(event) = self.event_at(position).await? else { continue };
                if let Event::DaySealed(seal) = event.event {
                    lines.push(projections::DaySealLine {
                        day,
                        sequence: seal.sequence,
                        event_count: seal.event_count,
                        merkle_root: seal.merkle_root,
                        key_id: seal.key_id,
                        global_position: position,
                    });
                }
                covered.insert(day, chain_head);
            }
        }
        let unsealed = period
            .iter()
            .filter(|step| !matches!(step.event.event, Event::DaySealed(_)))
            .filter(|step| {
                let day = projections::local_day(step.event.occurred_at, &self.time_zone);
                step.event.global_position > covered.get(&day).copied().unwrap_or(0)
            })
            .count() as u64;
        Ok((lines, unsealed))
    }

    /// The seals of local `day` and how many of its events they leave uncovered.
    pub async fn day_seals(&self, day: Date) -> Result<DaySeals, StoreError> {
        let head = self.catch_up().await?;
        let positions = self.views.read().await.seals.by_day.get(&day).cloned().unwrap_or_default();
        let mut seals = Vec::new();
        let mut covered_until = 0;
        for (position, _, chain_head) in positions {
            if let Some(event) = self.event_at(position).await? {
                if let Event::DaySealed(seal) = event.event {
                    seals.push(SealRecord {
                        global_position: event.global_position,
                        event_id: event.event_id,
                        recorded_at: event.recorded_at,
                        seal,
                    });
                }
            }
            covered_until = chain_head;
        }
        let last_event = self.views.read().await.seals.last_event_by_day.get(&day).copied().unwrap_or(0);
        let unsealed_events = if last_event > covered_until {
            let events = self.sealable_events(day, head).await?;
            events.iter().filter(|event| event.global_position > covered_until).count() as u64
        } else {
            0
        };
        Ok(DaySeals { day, seals, unsealed_events })
    }

    /// The export of local days `from..=to` (see the README's "Day export"): a header line,
    /// then for each day its events (log order) and its seals, each seal followed by the leaf
    /// hashes of the events it covers; with `key`, a last line signs every byte before it.
    pub async fn export_days(&self, from: Date, to: Date, key: Option<&SealKey>) -> Result<String, StoreError> {
        let keys: Vec<PublicSealKey> = key.iter().map(|key| key.public()).collect();
        let head = self.catch_up().await?;
        let header = serde_json::json!({
            "format": EXPORT_FORMAT,
            "version": 1,
            "from": from.to_string(),
            "to": to.to_string(),
            "time_zone": self.time_zone.iana_name().unwrap_or_default(),
            "chain_head_position": head,
            "public_keys": keys,
        });
        let mut out = serde_json_canonicalizer::to_string(&header).expect("plain JSON");
        out.push('\n');
        let mut day = from;
        while day <= to {
            let events = self.sealable_events(day, head).await?;
            let lines: Vec<String> = events.iter().map(day_file::export_line).collect();
            for line in &lines {
                out.push_str(line);
                out.push('\n');
            }
            let seals = self.views.read().await.seals.by_day.get(&day).cloned().unwrap_or_default();
            let mut covered_until = 0;
            for (position, _, chain_head) in seals.into_iter().filter(|(position, ..)| *position <= head) {
                let Some(seal) = self.event_at(position).await? else { continue };
                out.push_str(&day_file::export_line(&seal));
                out.push('\n');
                let leaves: Vec<String> = events
                    .iter()
                    .zip(&lines)
                    .filter(|(event, _)| event.global_position > covered_until && event.global_position <= chain_head)
                    .map(|(_, line)| day_file::leaf_hash(line))
                    .collect();
                out.push_str(
                    &serde_json_canonicalizer::to_string(&serde_json::json!({ "leaf_hashes": leaves }))
                        .expect("plain JSON"),
                );
                out.push('\n');
                covered_until = chain_head;
            }
            let Ok(next) = day.tomorrow() else { break };
            day = next;
        }
        if let Some(key) = key {
            let trailer = day_file::export_trailer(&out, key);
            out.push_str(&trailer);
            out.push('\n');
        }
        Ok(out)
    }

    /// The proof (see the README's "Day export") that event `event_id` is in the Merkle root
    /// of the signed seal of its day that covers it.
    pub async fn prove(&self, event_id: Uuid, keys: &[PublicSealKey]) -> Result<String, ProofError> {
        self.catch_up().await?;
        let event = self.store.read_event(event_id).await?.ok_or(ProofError::NoSuchEvent)?;
        if matches!(event.event, Event::DaySealed(_)) {
            return Err(ProofError::IsASeal);
        }
        let day = projections::local_day(event.occurred_at, &self.time_zone);
        let seals = self.views.read().await.seals.by_day.get(&day).cloned().unwrap_or_default();
        let mut covered_from = 0;
        for (position, _, chain_head) in seals {
            if event.global_position > covered_from && event.global_position <= chain_head {
                let seal = self.event_at(position).await?.ok_or(ProofError::NotSealed)?;
                let Event::DaySealed(sealed) = &seal.event else { return Err(ProofError::NotSealed) };
                if sealed.signature.is_empty() {
                    return Err(ProofError::NotSealed);
                }
                let mut covered = self.sealable_events(day, chain_head).await?;
                covered.retain(|other| other.global_position > covered_from);
                let lines: Vec<String> = covered.iter().map(day_file::export_line).collect();
                let index = covered.iter().position(|other| other.event_id == event_id).ok_or(ProofError::NotSealed)?;
                let proof = serde_json::json!({
                    "format": PROOF_FORMAT,
                    "version": 1,
                    "time_zone": self.time_zone.iana_name().unwrap_or_default(),
                    "event": lines[index],
                    "seal": day_file::export_line(&seal),
                    "leaf_index": index,
                    "tree_size": lines.len(),
                    "path": day_file::inclusion_path(&lines, index),
                    "public_keys": keys,
                });
                let mut text = serde_json_canonicalizer::to_string(&proof).expect("plain JSON");
                text.push('\n');
                return Ok(text);
            }
            covered_from = chain_head;
        }
        Err(ProofError::NotSealed)
    }
}

/// What checking every seal of the log found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SealCheck {
    /// Seals checked.
    pub seals: u64,
    /// Seals that do not match the log, or whose signature does not verify.
    pub problems: Vec<SealProblem>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SealProblem {
    pub global_position: u64,
    pub local_day: Date,
    pub sequence: u32,
    pub reason: String,
}

impl<S: EventStore> Service<S> {
    /// Checks every seal against the log: the events it covers (count, first and last
    /// position, Merkle root), the chain hash at its head, its link to the previous seal and,
    /// with `key`, its signature. It reads one day at a time.
    pub async fn verify_seals(&self, key: Option<&PublicSealKey>) -> Result<SealCheck, StoreError> {
        self.catch_up().await?;
        let by_day = self.views.read().await.seals.by_day.clone();
        let mut check = SealCheck::default();
        for (day, seals) in by_day {
            self.check_day_seals(day, &seals, key, &mut check).await?;
        }
        Ok(check)
    }

    /// Checks the seals of local `day` alone, as [`Service::verify_seals`] checks each day's.
    pub async fn verify_day_seals(&self, day: Date, key: Option<&PublicSealKey>) -> Result<SealCheck, StoreError> {
        self.catch_up().await?;
        let seals = self.views.read().await.seals.by_day.get(&day).cloned().unwrap_or_default();
        let mut check = SealCheck::default();
        self.check_day_seals(day, &seals, key, &mut check).await?;
        Ok(check)
    }

    async fn check_day_seals(
        &self,
        day: Date,
        seals: &[(u64, u32, u64)],
        key: Option<&PublicSealKey>,
        check: &mut SealCheck,
    ) -> Result<(), StoreError> {
        if seals.is_empty() {
            return Ok(());
        }
        let events = self.sealable_events(day, u64::MAX).await?;
        let mut covered_from = 0;
        for &(position, sequence, chain_head) in seals {
            check.seals += 1;
            let problem = self.seal_problem(position, &events, covered_from, key).await?;
            if let Some(reason) = problem {
                check.problems.push(SealProblem { global_position: position, local_day: day, sequence, reason });
            }
            covered_from = chain_head;
        }
        Ok(())
    }

    /// What is wrong with the seal at `position`, given its day's events (log order) and where
    /// the day's previous seal stopped.
    async fn seal_problem(
        &self,
        position: u64,
        day_events: &[RecordedEvent],
        covered_from: u64,
        key: Option<&PublicSealKey>,
    ) -> Result<Option<String>, StoreError> {
        let Some(event) = self.event_at(position).await? else {
            return Ok(Some("the seal is not in the log".into()));
        };
        let Event::DaySealed(seal) = &event.event else { return Ok(Some("not a seal".into())) };
        if hex::encode(self.hash_at(seal.chain_head_position).await?) != seal.chain_hash {
            return Ok(Some(format!("the chain hash at position {} is not the one sealed", seal.chain_head_position)));
        }
        if seal.merkle_root.is_empty() {
            // A version-1 seal names the chain head only.
            return Ok(None);
        }
        let covered: Vec<&RecordedEvent> = day_events
            .iter()
            .filter(|e| e.global_position > covered_from && e.global_position <= seal.chain_head_position)
            .collect();
        let lines: Vec<String> = covered.iter().map(|e| day_file::export_line(e)).collect();
        let first = covered.first().map_or(0, |e| e.global_position);
        let last = covered.last().map_or(0, |e| e.global_position);
        if covered.len() as u64 != seal.event_count
            || (first, last) != (seal.first_global_position, seal.last_global_position)
        {
            return Ok(Some(format!(
                "the seal covers {} events ({}..{}), the log holds {} ({first}..{last}) for it",
                seal.event_count,
                seal.first_global_position,
                seal.last_global_position,
                covered.len()
            )));
        }
        if day_file::merkle_root(&lines) != seal.merkle_root {
            return Ok(Some("the Merkle root is not that of the events it covers".into()));
        }
        if seal.previous_seal_position > 0
            && self.line_hash_at(seal.previous_seal_position).await? != Some(seal.previous_seal_hash.clone())
        {
            return Ok(Some("previous_seal_hash is not the hash of the previous seal".into()));
        }
        if let Some(key) = key {
            if let Err(reason) = day_file::check_seal_signature(seal, std::slice::from_ref(key)) {
                return Ok(Some(reason));
            }
        }
        Ok(None)
    }
}

/// Why no proof was made.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("the log holds no event with that id")]
    NoSuchEvent,
    #[error("that event is a seal; seals are checked by their signature, not a proof")]
    IsASeal,
    #[error("no signed seal covers that event yet (its day is not sealed, or it arrived after the last seal)")]
    NotSealed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    // Test code: an unwrap that fails is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn seal_at(position: u64, stream: &str, actor: &str, chain_head_position: u64, time_zone: &str) -> RecordedEvent {
        let Event::DaySealed(mut seal) =
            events_schema::samples::one_of_each().into_iter().find(|e| matches!(e, Event::DaySealed(_))).unwrap()
        else {
            unreachable!()
        };
        seal.chain_head_position = chain_head_position;
        seal.time_zone = time_zone.into();
        let mut event = events_schema::samples::recorded_event(
            position,
            EntityId::new(stream).unwrap(),
            "2020-02-21T00:00:00Z".parse().unwrap(),
            "2020-02-21T00:00:00Z".parse().unwrap(),
            seal.into(),
        );
        event.actor = EntityId::new(actor).unwrap();
        event
    }

    #[test]
    fn only_gridwatchs_own_seals_of_this_time_zone_are_taken() {
        let zone = TimeZone::get("Asia/Shanghai").unwrap();
        let mut index = SealIndex::default();
        for forged in [
            seal_at(10, "notes", SEALER, 9, "Asia/Shanghai"),
            seal_at(11, "seals", "staff-1", 9, "Asia/Shanghai"),
            seal_at(12, "seals", SEALER, 1_000, "Asia/Shanghai"),
            seal_at(13, "seals", SEALER, 9, "Europe/Paris"),
        ] {
            index.apply(&forged, &zone);
        }
        assert!(index.by_day.is_empty() && index.last.is_none(), "{index:?}");
        assert!(index.last_event_by_day.is_empty(), "a seal is no event to seal: {index:?}");
        index.apply(&seal_at(14, "seals", SEALER, 13, "Asia/Shanghai"), &zone);
        assert_eq!(index.last, Some(14));
    }
}

#[cfg(test)]
mod seal_id_tests {
    use super::*;

    #[test]
    fn a_seal_id_is_a_uuidv7_fixed_by_the_log_the_zone_the_day_and_the_sequence() {
        let day: Date = "2020-06-01".parse().unwrap();
        let zone = "Asia/Shanghai";
        let id = seal_event_id(&[7; 32], zone, day, 1);
        assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
        assert_eq!(id, seal_event_id(&[7; 32], zone, day, 1), "every node makes the same id");
        assert_ne!(id, seal_event_id(&[7; 32], zone, day, 2), "an addendum has its own");
        assert_ne!(id, seal_event_id(&[7; 32], zone, "2020-06-02".parse().unwrap(), 1));
        assert_ne!(id, seal_event_id(&[8; 32], zone, day, 1), "another log's seal has another id");
        assert_ne!(id, seal_event_id(&[7; 32], "UTC", day, 1), "the same date in another zone is another day");
    }
}
