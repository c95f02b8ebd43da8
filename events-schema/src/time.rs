//! `Timestamp`: an instant with microsecond precision, RFC 3339 in JSON and an `i64` of
//! microseconds since the Unix epoch in the binary log encoding.
//!
//! The log stores integers rather than strings so that decoding a record never parses text;
//! JSON readers and writers see RFC 3339 (`2020-02-20T09:30:00Z`).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant on the UTC time line, truncated to whole microseconds.
///
/// Microseconds are the unit stored in the log; anything finer given on input is dropped
/// when the value is made, so what is printed is exactly what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(jiff::Timestamp);

impl Timestamp {
    /// The current time, read from the system clock. Only edges (store, CLI, server) call
    /// this: domain code and projections receive time as a value.
    pub fn now() -> Timestamp {
        Timestamp::from_jiff(jiff::Timestamp::now())
    }

    /// Truncates `timestamp` to whole microseconds.
    pub fn from_jiff(timestamp: jiff::Timestamp) -> Timestamp {
        let micros = timestamp.as_microsecond();
        Timestamp(jiff::Timestamp::from_microsecond(micros).expect("truncation stays in range"))
    }

    /// Microseconds since 1970-01-01T00:00:00Z; the stored form.
    pub fn as_microsecond(self) -> i64 {
        self.0.as_microsecond()
    }

    /// The inverse of [`Timestamp::as_microsecond`]; `None` outside jiff's supported range
    /// (years -9999 to 9999).
    pub fn from_microsecond(micros: i64) -> Option<Timestamp> {
        jiff::Timestamp::from_microsecond(micros).ok().map(Timestamp)
    }

    /// The underlying `jiff` value, for time-zone arithmetic at the edges and in projections.
    pub fn as_jiff(self) -> jiff::Timestamp {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Timestamp {
    type Err = jiff::Error;

    /// Parses RFC 3339 with an offset (`2020-02-20T09:30:00+08:00` or `...Z`).
    fn from_str(text: &str) -> Result<Timestamp, jiff::Error> {
        text.parse::<jiff::Timestamp>().map(Timestamp::from_jiff)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(&self.0)
        } else {
            serializer.serialize_i64(self.as_microsecond())
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let text = Cow::<str>::deserialize(deserializer)?;
            text.parse().map_err(|error| {
                D::Error::custom(format!(
                    "invalid timestamp {text:?}: expected RFC 3339 such as \
                     2020-02-20T09:30:00+08:00 ({error})"
                ))
            })
        } else {
            let micros = i64::deserialize(deserializer)?;
            Timestamp::from_microsecond(micros)
                .ok_or_else(|| D::Error::custom(format!("timestamp out of range: {micros} microseconds")))
        }
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 instant with an offset; stored with microsecond precision."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_rfc3339_and_binary_is_microseconds() {
        let timestamp: Timestamp = "2020-02-20T09:30:00.123456789+08:00".parse().unwrap();
        assert_eq!(serde_json::to_string(&timestamp).unwrap(), "\"2020-02-20T01:30:00.123456Z\"");
        let bytes = bincode::serde::encode_to_vec(timestamp, bincode::config::standard()).unwrap();
        let (back, _): (Timestamp, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, timestamp);
        assert_eq!(back.as_microsecond() % 1_000_000, 123_456);
    }

    #[test]
    fn rejects_text_without_offset() {
        let error = serde_json::from_str::<Timestamp>("\"2020-02-20T09:30:00\"").unwrap_err();
        assert!(error.to_string().contains("RFC 3339"), "{error}");
    }
}
