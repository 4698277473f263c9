//! Property tests of the key rules: idempotence, round trips, and no panics on any input.

use at_persistence_secondary_server::key::{
    always_include_in_sync, canonical_key, check_key_length, classify, is_namespace_authorised,
    namespace_of, parse_at_key, utf7_decode, utf7_encode, utf7_len, validate_at_sign, validate_key,
    validate_notification_id, KeyPattern, KeyType, SyncRule,
};
use proptest::prelude::*;

/// Strings built from the characters that matter to the key rules: separators, case,
/// whitespace of several kinds, UTF-7 specials, emoji (incl. a variation selector), the
/// IPA code points, letters whose lower case is special, and a few reserved words.
fn key_like() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a",
        "B",
        "z",
        "0",
        "9",
        "_",
        "-",
        ".",
        ":",
        "@",
        "@",
        " ",
        "\t",
        "\u{A0}",
        "\u{FEFF}",
        "\u{3000}",
        "+",
        "\\",
        "~",
        "'",
        "*",
        "\"",
        "\u{1F499}",
        "\u{260E}\u{FE0F}",
        "\u{250}",
        "\u{212A}",
        "\u{130}",
        "\u{3A3}",
        "é",
        "日",
        "public:",
        "private:",
        "privatekey:",
        "cached:",
        "local:",
        "shared_key",
        "publickey",
        "configkey",
        "at_secret",
        "wavi",
        "__manage",
        "alice",
        "@bob:",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), key_like()]
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of(any_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_key_is_idempotent(s in any_string()) {
        let once = canonical_key(&s);
        prop_assert_eq!(canonical_key(&once), once.clone());
        prop_assert!(!once.contains(' '));
    }

    #[test]
    fn classify_never_panics_and_valid_keys_validate(s in any_string()) {
        let lower = s.to_lowercase();
        let kind = classify(&lower);
        let _ = classify(&s);
        match validate_key(&s) {
            Ok(canonical) => {
                prop_assert_ne!(kind, KeyType::InvalidKey);
                prop_assert_eq!(canonical, canonical_key(&s));
            }
            Err(_) => prop_assert_eq!(kind, KeyType::InvalidKey),
        }
        let _ = check_key_length(&s, &canonical_key(&s));
        let _ = validate_at_sign(&s);
        let _ = validate_notification_id(&s);
    }

    #[test]
    fn parsing_and_sync_rules_never_panic(s in any_string(), enrolled in prop::collection::vec(any_string(), 0..3)) {
        let parsed = parse_at_key(&s);
        let ns = namespace_of(&s);
        prop_assert_eq!(parsed.is_some(), ns.is_ok());
        if let (Some(p), Ok(n)) = (&parsed, &ns) {
            prop_assert_eq!(&p.namespace, n);
        }
        let _ = always_include_in_sync(&s);
        let _ = is_namespace_authorised(&s, Some(&enrolled));
        let rule = SyncRule::new(None, Some(enrolled)).unwrap();
        let _ = rule.admits(&s);
        let _ = rule.counts_toward_last_commit_id(&s);
    }

    #[test]
    fn key_pattern_matching_never_panics(
        key in any_string(),
        shared_by in opt_string(),
        shared_with in opt_string(),
        namespace in opt_string(),
        id_prefix in opt_string(),
    ) {
        let pattern = KeyPattern { shared_by, shared_with, namespace, id_prefix };
        let matched = pattern.matches(&key);
        if pattern.is_unrestricted() {
            prop_assert!(matched);
        } else if parse_at_key(&key).is_none() {
            prop_assert!(!matched);
        }
        let _ = pattern.to_string();
    }

    #[test]
    fn utf7_round_trips(s in any_string()) {
        let encoded = utf7_encode(&s);
        prop_assert!(encoded.is_ascii());
        prop_assert_eq!(utf7_len(&s), encoded.len());
        prop_assert_eq!(utf7_decode(&encoded), s);
    }

    #[test]
    fn utf7_decode_never_panics(s in any_string()) {
        let _ = utf7_decode(&s);
    }
}
