//! `EntityId`: the validated identifier of a community, grid, site, checkpoint, staff member,
//! team, issue, round, task or directive.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The longest identifier accepted, in bytes.
pub const ENTITY_ID_BYTES_MAX: usize = 128;

/// An identifier chosen by the people who register the entity (`gate-longwu-north`,
/// `staff-7`). Checked when it is made, so an id in a stored event is always well formed:
/// 1 to [`ENTITY_ID_BYTES_MAX`] bytes of ASCII letters, digits, `-`, `_`, `.` or `:`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityId(String);

/// Why a string is not an [`EntityId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {id:?}: ids are 1 to {ENTITY_ID_BYTES_MAX} ASCII letters, digits, '-', '_', '.' or ':'")]
pub struct InvalidEntityId {
    pub id: String,
}

impl EntityId {
    pub fn new(id: impl Into<String>) -> Result<EntityId, InvalidEntityId> {
        let id = id.into();
        let well_formed = !id.is_empty()
            && id.len() <= ENTITY_ID_BYTES_MAX
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if well_formed { Ok(EntityId(id)) } else { Err(InvalidEntityId { id }) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntityId {
    type Error = InvalidEntityId;
    fn try_from(id: String) -> Result<EntityId, InvalidEntityId> {
        EntityId::new(id)
    }
}

impl From<EntityId> for String {
    fn from(id: EntityId) -> String {
        id.0
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
