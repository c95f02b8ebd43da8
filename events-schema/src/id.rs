//! `EntityId`: the validated identifier of a community, grid, site, checkpoint, staff member,
//! team, issue, round, task or directive.

use std::borrow::Cow;
use std::fmt;

use compact_str::CompactString;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The longest identifier accepted, in bytes.
pub const ENTITY_ID_BYTES_MAX: usize = 128;

/// An identifier chosen by the people who register the entity (`gate-longwu-north`,
/// `staff-7`). Checked when it is made, so an id in a stored event is always well formed:
/// 1 to [`ENTITY_ID_BYTES_MAX`] bytes of ASCII letters, digits, `-`, `_`, `.` or `:`.
///
/// Held as a `CompactString`: ids of up to 24 bytes (nearly all) live inline, so decoding
/// a stored event does not allocate for its ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityId(CompactString);

/// Why a string is not an [`EntityId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {id:?}: ids are 1 to {ENTITY_ID_BYTES_MAX} ASCII letters, digits, '-', '_', '.' or ':'")]
pub struct InvalidEntityId {
    pub id: String,
}

impl EntityId {
    pub fn new(id: impl AsRef<str>) -> Result<EntityId, InvalidEntityId> {
        let id = id.as_ref();
        let well_formed = !id.is_empty()
            && id.len() <= ENTITY_ID_BYTES_MAX
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if well_formed { Ok(EntityId(CompactString::new(id))) } else { Err(InvalidEntityId { id: id.to_owned() }) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for EntityId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EntityId, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = EntityId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id string")
            }
            fn visit_str<E: de::Error>(self, id: &str) -> Result<EntityId, E> {
                EntityId::new(id).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for EntityId {
    fn schema_name() -> Cow<'static, str> {
        "EntityId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": ENTITY_ID_BYTES_MAX,
            "pattern": "^[A-Za-z0-9._:-]+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids_and_rejects_the_rest() {
        assert!(EntityId::new("gate-longwu-north").is_ok());
        assert!(EntityId::new("staff:7").is_ok());
        for bad in ["", "has space", "门", &"x".repeat(ENTITY_ID_BYTES_MAX + 1)] {
            assert!(EntityId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<EntityId>("\"a b\"").is_err());
    }
}
