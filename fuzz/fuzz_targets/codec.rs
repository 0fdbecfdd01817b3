//! The record codec on arbitrary bytes (a corrupt or foreign data file): decoding must
//! never panic (or abort), and whatever decodes must survive a re-encode unchanged.
//!
//! The codec is *not* a bijection on bytes: bincode 2's varint decoder accepts
//! non-minimal integer encodings (`fb 05 00` decodes as 5, which encodes as `05`), so
//! the checks are `decode(encode(r)) == r`, and that a decodable input differing from
//! the canonical encoding is strictly longer than it (every non-minimal form is longer;
//! everything else in these records has a single accepted encoding). An input written
//! at an older schema version is upgraded on decode and re-encoded at the newest, so for
//! those only the round trip is checked — of what the newest version stores: a delivery
//! read at version 1 holds its attempts inline until it is saved, which moves them into
//! their own table, so they are not part of its encoding. A delivery record does not hold
//! its id (its key does): it is decoded under a fixed one.

#![no_main]

use std::fmt::Debug;

use hookd::model::DeliveryId;
use hookd::store::codec::{self, CodecError, Record};
use hookd::store::records::{
    Attempt, DeliveryRecord, EventRecord, NotificationRecord, NotifyMarks, WebhookRecord,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::<WebhookRecord>(data);
    check::<EventRecord>(data);
    check_with(
        data,
        ("delivery", DeliveryRecord::VERSION),
        |bytes| DeliveryRecord::decode(DeliveryId(7), bytes),
        DeliveryRecord::encode,
    );
    check::<Attempt>(data);
    check::<NotificationRecord>(data);
    check::<NotifyMarks>(data);
});

/// What of a decoded record its encoding keeps.
trait Stored: Sized {
    fn stored(self) -> Self {
        self
    }
}

impl Stored for WebhookRecord {}
impl Stored for EventRecord {}
impl Stored for Attempt {}
impl Stored for NotificationRecord {}
impl Stored for NotifyMarks {}
impl Stored for DeliveryRecord {
    fn stored(mut self) -> Self {
        self.inline_attempts.clear();
        self
    }
}

fn check<R: Record + Stored + PartialEq + Debug>(data: &[u8]) {
    check_with(
        data,
        (R::NAME, R::VERSION),
        codec::decode::<R>,
        codec::encode::<R>,
    );
}

/// `check` for a record read and written by `decode` and `encode`, named `name` and
/// stored at `version`.
fn check_with<R: Stored + PartialEq + Debug>(
    data: &[u8],
    (name, version): (&str, u8),
    decode: impl Fn(&[u8]) -> Result<R, CodecError>,
    encode: impl Fn(&R) -> Vec<u8>,
) {
    let record = match decode(data) {
        Ok(record) => record.stored(),
        Err(e) => {
            // The message ends up in logs and error answers.
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let encoded = encode(&record);
    assert_eq!(
        decode(&encoded).as_ref(),
        Ok(&record),
        "{name} record does not survive encode -> decode",
    );
    let older_version = data.first() != Some(&version);
    assert!(
        older_version || encoded == data || encoded.len() < data.len(),
        "{name} record {record:?}: non-canonical input {data:02x?} is not longer than its encoding {encoded:02x?}",
    );
}
