//! One NATS subject per event stream, under the stream's prefix: `PREFIX.e.ID` for an id
//! without dots, `PREFIX.x.HEX` (the id's bytes in hex) for one with dots, so that every id
//! is one subject token and no two ids share a subject.

use events_schema::EntityId;

/// The subject of event stream `stream_id` under `prefix`.
pub(crate) fn of(prefix: &str, stream_id: &EntityId) -> String {
    let id = stream_id.as_str();
    if id.contains('.') { format!("{prefix}.x.{}", hex::encode(id)) } else { format!("{prefix}.e.{id}") }
}

/// Every subject of the event streams under `prefix`.
pub(crate) fn all(prefix: &str) -> String {
    format!("{prefix}.>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_one_token_and_no_two_ids_share_a_subject() {
        let ids = ["gate-1", "a.b", "a:b", "612e62", "x.612e62"];
        let subjects: Vec<String> = ids.iter().map(|id| of("gw", &EntityId::new(id).unwrap())).collect();
        assert_eq!(subjects, ["gw.e.gate-1", "gw.x.612e62", "gw.e.a:b", "gw.e.612e62", "gw.x.782e363132653632"]);
        for subject in &subjects {
            assert_eq!(subject.split('.').count(), 3, "{subject}");
        }
    }
}
