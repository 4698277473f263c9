//! Arbitrary bytes through every decoder of stored or caller-supplied data: the record
//! codec for each stored type, the JSON forms, and the key rules. None may panic; the
//! codec must answer `CorruptRecord` whenever it refuses.
#![no_main]

use at_persistence_secondary_server::key::{self, KeyPattern};
use at_persistence_secondary_server::model::{
    codec, AccessLogEntry, AtData, AtMetaData, AtNotification, CommitEntry, CompactionStats,
};
use at_persistence_secondary_server::PersistenceError;
use libfuzzer_sys::fuzz_target;

fn refused<T>(r: Result<T, PersistenceError>) {
    if let Err(e) = r {
        assert!(
            matches!(e, PersistenceError::CorruptRecord { .. }),
            "the codec refused with {e:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let key = String::new;
    refused(codec::decode::<AtData>(data, "fuzz", &key));
    refused(codec::decode::<AtMetaData>(data, "fuzz", &key));
    refused(codec::decode::<CommitEntry>(data, "fuzz", &key));
    refused(codec::decode::<AccessLogEntry>(data, "fuzz", &key));
    refused(codec::decode::<AtNotification>(data, "fuzz", &key));
    refused(codec::decode::<CompactionStats>(data, "fuzz", &key));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AtMetaData::from_json_str(text);
        let _ = AtData::from_json_str(text);
        let _ = CommitEntry::from_json_str(text);
        let _ = AtNotification::from_json_str(text);
        let _ = key::classify(text);
        let _ = key::validate_key(text).map(|c| key::check_key_length(text, &c));
        let _ = key::parse_at_key(text);
        let _ = key::is_commit_skipped(text);
        let _ = key::utf7_decode(text);
        let _ = KeyPattern {
            id_prefix: Some(text.to_string()),
            ..KeyPattern::default()
        }
        .matches(text);
    }
});
