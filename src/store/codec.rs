//! The record codec: every value hookd stores is `[version byte] ++ bincode(record)`.
//!
//! bincode 2.0.1 is pinned (`=2.0.1`): its wire format is frozen, which is what a storage
//! format needs. The leading version byte is what lets a record's schema evolve: a new
//! field means a new version number and a decoder for the old one, never a silent
//! misread. A record from a version this binary does not know is a clear error, not
//! garbage — e.g. when an older hookd is started on a newer data file.
//!
//! How a schema evolves (append-only, like the versions themselves):
//! 1. keep the old layout as a frozen struct (`records::v1::WebhookRecordV1`, …) that is
//!    never changed again;
//! 2. raise `VERSION` and change the live struct;
//! 3. teach [`Record::decode_older`] to read the old version through [`decode_body`] and
//!    convert it (`From<V1>`), choosing what the new fields hold for old records.
//!
//! Records are always *written* at the newest version, so an old record is upgraded the
//! next time it is rewritten and never needs a migration pass over the whole file.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A type stored through the codec.
pub trait Record: Serialize + DeserializeOwned {
    /// Used in error messages: "webhook", "event", …
    const NAME: &'static str;
    /// The schema version written in front of every record of this type.
    const VERSION: u8;

    /// Reads a body written under an older schema `version` (always `< VERSION`). Only
    /// records whose schema has changed override this; the default knows no older version.
    fn decode_older(version: u8, _body: &[u8]) -> Result<Self, CodecError> {
        Err(CodecError::unknown_version::<Self>(version))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    Empty {
        record: &'static str,
    },
    UnknownVersion {
        record: &'static str,
        found: u8,
        supported: u8,
    },
    Malformed {
        record: &'static str,
        detail: String,
    },
}

impl CodecError {
    /// `found` is a version `R` has no decoder for.
    pub fn unknown_version<R: Record>(found: u8) -> CodecError {
        CodecError::UnknownVersion {
            record: R::NAME,
            found,
            supported: R::VERSION,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Empty { record } => write!(f, "stored {record} record is empty"),
            CodecError::UnknownVersion {
                record,
                found,
                supported,
            } => write!(
                f,
                "stored {record} record has schema version {found}, but this hookd reads versions up to {supported}; \
                 was the data file written by a newer hookd?"
            ),
            CodecError::Malformed { record, detail } => {
                write!(f, "stored {record} record is malformed: {detail}")
            }
        }
    }
}

impl std::error::Error for CodecError {}

/// No stored record is larger than this (payloads are capped at 64 MiB).
const MAX_RECORD_BYTES: usize = 128 << 20;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Decoding checks claimed lengths against a limit *before* allocating, so a corrupt
/// length prefix is an error rather than a multi-gigabyte allocation (found by fuzzing).
fn decode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_RECORD_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

pub fn encode<R: Record>(record: &R) -> Vec<u8> {
    encode_view::<R>(record)
}

/// Encodes `view` as a record of type `R`: a borrowed form that serde serializes exactly
/// as `R` (`&T` fields where `R` has `T`), so that what is encoded need not be cloned.
pub fn encode_view<R: Record>(view: &impl Serialize) -> Vec<u8> {
    let mut out = vec![R::VERSION];
    // Encoding into a Vec cannot fail for our plain-data records (no maps with
    // non-serializable keys, no custom serializers that error).
    match bincode::serde::encode_into_std_write(view, &mut out, config()) {
        Ok(_) => out,
        Err(e) => unreachable!("encoding a {} record into memory failed: {e}", R::NAME),
    }
}

/// For tests of upgrades: `body` encoded behind `version`, as an older hookd wrote it
/// (a frozen layout such as `records::v1::DeliveryRecordV1`).
#[cfg(test)]
pub(crate) fn encode_at(version: u8, body: &impl Serialize) -> Vec<u8> {
    let mut out = vec![version];
    bincode::serde::encode_into_std_write(body, &mut out, config()).expect("encode in memory");
    out
}

pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, CodecError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or(CodecError::Empty { record: R::NAME })?;
    if version == R::VERSION {
        decode_body(R::NAME, body)
    } else if version < R::VERSION {
        R::decode_older(version, body)
    } else {
        Err(CodecError::unknown_version::<R>(version))
    }
}

/// Decodes one bincode body (the bytes after the version byte) as `T`, which must use
/// every byte. `record` names the record in errors. [`Record::decode_older`]
/// implementations read their frozen old layouts through this.
pub fn decode_body<T: DeserializeOwned>(
    record: &'static str,
    body: &[u8],
) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(body, decode_config()).map_err(|e| {
        CodecError::Malformed {
            record,
            detail: e.to_string(),
        }
    })?;
    if read != body.len() {
        return Err(CodecError::Malformed {
            record,
            detail: format!("{} trailing bytes", body.len() - read),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        name: String,
        count: u64,
        tags: Vec<String>,
        maybe: Option<i64>,
    }

    impl Record for Sample {
        const NAME: &'static str = "sample";
        const VERSION: u8 = 3;

        fn decode_older(version: u8, body: &[u8]) -> Result<Self, CodecError> {
            match version {
                2 => decode_body::<SampleV2>(Self::NAME, body).map(|old| Sample {
                    name: old.name,
                    count: old.count,
                    tags: Vec::new(),
                    maybe: None,
                }),
                _ => Err(CodecError::unknown_version::<Self>(version)),
            }
        }
    }

    /// The layout `Sample` had at version 2, frozen.
    #[derive(Serialize, Deserialize)]
    struct SampleV2 {
        name: String,
        count: u64,
    }

    fn sample() -> Sample {
        Sample {
            name: "héllo".into(),
            count: u64::MAX,
            tags: vec!["a".into(), String::new()],
            maybe: Some(-5),
        }
    }

    #[test]
    fn round_trips_and_leads_with_the_version_byte() {
        let bytes = encode(&sample());
        assert_eq!(bytes[0], 3);
        assert_eq!(decode::<Sample>(&bytes), Ok(sample()));
    }

    #[test]
    fn an_older_version_is_read_through_its_frozen_layout() {
        let mut old = vec![2];
        bincode::serde::encode_into_std_write(
            &SampleV2 {
                name: "old".into(),
                count: 7,
            },
            &mut old,
            config(),
        )
        .unwrap();
        let upgraded = decode::<Sample>(&old).unwrap();
        assert_eq!((upgraded.name.as_str(), upgraded.count), ("old", 7));
        assert!(upgraded.tags.is_empty() && upgraded.maybe.is_none());
        // Re-encoding writes the newest version.
        assert_eq!(encode(&upgraded)[0], 3);
        // A version older than any decoder knows is still a clear error.
        old[0] = 1;
        assert!(matches!(
            decode::<Sample>(&old),
            Err(CodecError::UnknownVersion { found: 1, .. })
        ));
    }

    #[test]
    fn unknown_version_is_a_clear_error() {
        let mut bytes = encode(&sample());
        bytes[0] = 4;
        let err = decode::<Sample>(&bytes).unwrap_err();
        assert_eq!(
            err,
            CodecError::UnknownVersion {
                record: "sample",
                found: 4,
                supported: 3
            }
        );
        assert!(err.to_string().contains("schema version 4"));
    }

    #[test]
    fn empty_truncated_and_padded_records_are_errors() {
        assert_eq!(
            decode::<Sample>(&[]),
            Err(CodecError::Empty { record: "sample" })
        );
        let bytes = encode(&sample());
        assert!(matches!(
            decode::<Sample>(&bytes[..bytes.len() - 1]),
            Err(CodecError::Malformed { .. })
        ));
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(matches!(
            decode::<Sample>(&padded),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn absurd_length_prefixes_are_errors_not_allocations() {
        use crate::store::records::EventRecord;
        for hex in [
            "01fc010107fe",
            "01fdffffffffffffffff",
            "01fd0000000000000040",
        ] {
            let bytes = hex::decode(hex).unwrap();
            assert!(
                matches!(
                    decode::<EventRecord>(&bytes),
                    Err(CodecError::Malformed { .. })
                ),
                "{hex}"
            );
        }
    }

    #[test]
    fn real_records_round_trip() {
        use crate::model::*;
        use crate::store::records::*;
        let mut hook = WebhookRecord::new(
            "user-123".into(),
            "n".into(),
            "https://example.com/h".into(),
            vec![
                EventPattern::All,
                EventPattern::Exact(EventType::AgentError),
            ],
            Some("s".into()),
            Millis(1),
        );
        hook.previous_secret = Some(("old".into(), Millis(9)));
        hook.paused_until = Some(Millis(3));
        assert_eq!(decode::<WebhookRecord>(&encode(&hook)), Ok(hook));
        let delivery = DeliveryRecord {
            id: DeliveryId::generate(),
            seq: 9,
            webhook_id: WebhookId::generate(),
            event: EventRef::Seq(4),
            event_type: EventType::MessageSent,
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: Some(Millis(7)),
            created_at: Millis(3),
            schedule_base: 0,
            inline_attempts: Vec::new(),
        };
        let attempt = Attempt {
            at: Millis(5),
            status_code: Some(500),
            duration_ms: 12,
            error: None,
            response_body: Some("oops".into()),
        };
        assert_eq!(decode::<Attempt>(&encode(&attempt)), Ok(attempt));
        assert_eq!(
            DeliveryRecord::decode(delivery.id, &delivery.encode()),
            Ok(delivery)
        );
    }
}
