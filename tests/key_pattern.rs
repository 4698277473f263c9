//! API-5.0 2.2 (KeyPattern and the AtKey.fromString quirks) and the scan_keys_test cases of
//! API-5.0 section 9, as pure matching over the seed keys.

use at_persistence_secondary_server::key::{parse_at_key, KeyParseError, KeyPattern, ParsedAtKey};

fn pattern(
    shared_by: Option<&str>,
    shared_with: Option<&str>,
    namespace: Option<&str>,
    id_prefix: Option<&str>,
) -> KeyPattern {
    KeyPattern {
        shared_by: shared_by.map(str::to_string),
        shared_with: shared_with.map(str::to_string),
        namespace: namespace.map(str::to_string),
        id_prefix: id_prefix.map(str::to_string),
    }
}

fn by(v: &str) -> KeyPattern {
    pattern(Some(v), None, None, None)
}
fn with(v: &str) -> KeyPattern {
    pattern(None, Some(v), None, None)
}
fn ns(v: &str) -> KeyPattern {
    pattern(None, None, Some(v), None)
}
fn prefix(v: &str) -> KeyPattern {
    pattern(None, None, None, Some(v))
}

const SEEDS: [&str; 6] = [
    "public:phone.wavi@alice",
    "public:email.wavi@alice",
    "@bob:secret.wavi@alice",
    "@bob:plan.tasks@alice",
    "@charlie:plan.tasks@alice",
    "private:apkam.__manage@alice",
];

fn scan(p: &KeyPattern) -> Vec<&'static str> {
    SEEDS.iter().copied().filter(|k| p.matches(k)).collect()
}

#[test]
fn scan_keys_test_cases() {
    assert_eq!(scan(&KeyPattern::default()).len(), 6);
    assert_eq!(scan(&by("@alice")).len(), 6);
    assert!(scan(&by("@bob")).is_empty());
    assert_eq!(scan(&by("@ALICE")).len(), 6);
    assert_eq!(scan(&by("alice")).len(), 6);

    let bob = scan(&with("@bob"));
    assert_eq!(bob, ["@bob:secret.wavi@alice", "@bob:plan.tasks@alice"]);
    assert!(bob.iter().all(|k| k.starts_with("@bob:")));
    assert_eq!(scan(&with("@charlie")), ["@charlie:plan.tasks@alice"]);

    let wavi = scan(&ns("wavi"));
    assert_eq!(wavi.len(), 3);
    assert!(wavi.iter().all(|k| k.contains(".wavi@")));
    assert_eq!(scan(&ns("tasks")).len(), 2);
    assert!(scan(&ns("unknown")).is_empty());

    assert_eq!(
        scan(&prefix("p")),
        [
            "public:phone.wavi@alice",
            "@bob:plan.tasks@alice",
            "@charlie:plan.tasks@alice"
        ]
    );
    assert_eq!(
        scan(&pattern(None, Some("@bob"), Some("tasks"), None)),
        ["@bob:plan.tasks@alice"]
    );
    assert!(scan(&prefix("phone")).contains(&"public:phone.wavi@alice"));
    assert_eq!(scan(&ns("__manage")), ["private:apkam.__manage@alice"]);
}

#[test]
fn notification_ids_match_only_the_unrestricted_pattern() {
    let ids = [
        "4f0c8c8e-6f5e-4f0a-9a43-1d2b7c3a9e01",
        "9b2d1c7a-0000-4abc-8def-123456789abc",
    ];
    for id in ids {
        assert!(KeyPattern::default().matches(id));
        assert!(!by("@alice").matches(id));
        assert!(!ns("wavi").matches(id));
        assert!(
            !prefix("").matches(id),
            "a key that does not parse never matches"
        );
    }
}

#[test]
fn matching_quirks() {
    // (key, pattern, matches)
    let table: Vec<(&str, KeyPattern, bool)> = vec![
        // private: and privatekey: read as recipients.
        ("private:x@alice", with("private"), true),
        ("private:x@alice", with("@private"), true),
        ("private:x@alice", with("PRIVATE"), true),
        ("private:x@alice", by("@alice"), true),
        ("privatekey:x@alice", with("privatekey"), true),
        ("privatekey:x@alice", with("private"), false),
        // local: is not a recipient.
        ("local:x@alice", with("local"), false),
        ("local:x@alice", by("alice"), true),
        // cached:@bob: has the recipient @bob; cached:public: has none.
        ("cached:@bob:x@alice", with("@bob"), true),
        ("cached:@bob:x@alice", with("bob"), true),
        ("cached:@bob:x@alice", with("cached"), false),
        ("cached:public:x@alice", with("public"), false),
        ("cached:public:x.wavi@alice", ns("wavi"), true),
        // Public and self keys have no recipient.
        ("public:x@alice", with("public"), false),
        ("public:x@alice", with(""), false),
        ("x@alice", with("alice"), false),
        // Owner: case-insensitive, leading @ optional on either side.
        ("public:phone.wavi@alice", by("@ALICE"), true),
        ("public:phone.wavi@alice", by("Alice"), true),
        ("public:phone.wavi@alice", by("@alic"), false),
        ("public:phone.wavi@alice", by("@@alice"), false),
        // Namespace: exact, after the last '.'.
        ("public:phone.wavi@alice", ns("wavi"), true),
        ("public:phone.wavi@alice", ns("WAVI"), false),
        ("msg1.chat.wavi@alice", ns("wavi"), true),
        ("msg1.chat.wavi@alice", ns("chat.wavi"), false),
        ("phone@alice", ns(""), false),
        // Id prefix: plain, case-sensitive, on the id before the last '.'.
        ("public:phone.wavi@alice", prefix("phone"), true),
        ("public:phone.wavi@alice", prefix("Phone"), false),
        ("public:phone.wavi@alice", prefix("phone.wavi"), false),
        ("public:phone.wavi@alice", prefix("public"), false),
        ("msg1.chat.wavi@alice", prefix("msg1.chat"), true),
        ("a.b@alice", prefix("a.*"), false),
        ("phone@alice", prefix(""), true),
        ("private:apkam.__manage@alice", prefix("apkam"), true),
        // Keys that do not parse match only the unrestricted pattern.
        ("configkey", KeyPattern::default(), true),
        ("configkey", prefix("config"), false),
        ("my phone@alice", by("alice"), false),
        ("cached:phone@bob", by("bob"), false),
        ("privatekey:privatekey", prefix("privatekey"), false),
        // Special private keys.
        ("privatekey:privatekey@alice", by("alice"), true),
        ("privatekey:privatekey@alice", with("privatekey"), false),
        (
            "privatekey:at_pkam_publickey",
            prefix("privatekey:at_pkam"),
            true,
        ),
        ("privatekey:at_pkam_publickey", with("privatekey"), false),
        // All set fields must hold.
        (
            "@bob:plan.tasks@alice",
            pattern(Some("alice"), Some("bob"), Some("tasks"), Some("pl")),
            true,
        ),
        (
            "@bob:plan.tasks@alice",
            pattern(Some("alice"), Some("bob"), Some("tasks"), Some("x")),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (key, p, expected) in &table {
        if p.matches(key) != *expected {
            failures.push(format!("{key:?} with {p}: expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unrestricted_and_display() {
    let any = KeyPattern::default();
    assert!(any.is_unrestricted());
    assert_eq!(
        any.to_string(),
        "KeyPattern(sharedBy: null, sharedWith: null, namespace: null, idPrefix: null)"
    );
    let p = pattern(Some("@alice"), Some("@bob"), Some("wavi"), Some("ph"));
    assert!(!p.is_unrestricted());
    assert!(!prefix("").is_unrestricted());
    assert_eq!(
        p.to_string(),
        "KeyPattern(sharedBy: @alice, sharedWith: @bob, namespace: wavi, idPrefix: ph)"
    );
}

fn parsed(
    id: &str,
    namespace: Option<&str>,
    shared_by: Option<&str>,
    shared_with: Option<&str>,
    flags: (bool, bool, bool),
) -> ParsedAtKey {
    ParsedAtKey {
        id: id.to_string(),
        namespace: namespace.map(str::to_string),
        shared_by: shared_by.map(str::to_string),
        shared_with: shared_with.map(str::to_string),
        is_public: flags.0,
        is_cached: flags.1,
        is_local: flags.2,
    }
}

#[test]
fn parse_table() {
    const NONE: (bool, bool, bool) = (false, false, false);
    const PUBLIC: (bool, bool, bool) = (true, false, false);
    const CACHED: (bool, bool, bool) = (false, true, false);
    const CACHED_PUBLIC: (bool, bool, bool) = (true, true, false);
    const LOCAL: (bool, bool, bool) = (false, false, true);
    let table = [
        (
            "public:phone.wavi@alice",
            parsed("phone", Some("wavi"), Some("@alice"), None, PUBLIC),
        ),
        (
            "private:apkam.__manage@alice",
            parsed(
                "apkam",
                Some("__manage"),
                Some("@alice"),
                Some("private"),
                NONE,
            ),
        ),
        (
            "private:x@alice",
            parsed("x", None, Some("@alice"), Some("private"), NONE),
        ),
        (
            "privatekey:testkey@alice",
            parsed("testkey", None, Some("@alice"), Some("privatekey"), NONE),
        ),
        (
            "local:x@alice",
            parsed("x", None, Some("@alice"), None, LOCAL),
        ),
        (
            "cached:@bob:x@alice",
            parsed("x", None, Some("@alice"), Some("@bob"), CACHED),
        ),
        (
            "cached:public:phone.buzz@bob",
            parsed("phone", Some("buzz"), Some("@bob"), None, CACHED_PUBLIC),
        ),
        (
            "cached:@bob:city.address.my_app@alice",
            parsed(
                "city.address",
                Some("my_app"),
                Some("@alice"),
                Some("@bob"),
                CACHED,
            ),
        ),
        (
            "@bob:phone.wavi@alice",
            parsed("phone", Some("wavi"), Some("@alice"), Some("@bob"), NONE),
        ),
        (
            "phone@alice",
            parsed("phone", None, Some("@alice"), None, NONE),
        ),
        // Case: owner, recipient and namespace are lower-cased, the id is not.
        (
            "@Bob:Phone.WAVI@ALICE",
            parsed("Phone", Some("wavi"), Some("@alice"), Some("@bob"), NONE),
        ),
        // Only the text between the first and second '@' is the owner of a one-segment key.
        (
            "phone@alice@bob",
            parsed("phone", None, Some("@alice"), None, NONE),
        ),
        // Two '@' in the entity segment: no owner.
        (
            "@bob:x@alice@carol",
            parsed("x", None, None, Some("@bob"), NONE),
        ),
        // Segments after the entity segment are ignored.
        ("a:b:c@alice", parsed("b", None, None, Some("a"), NONE)),
        (
            "public:@bob:phone@alice",
            parsed("", None, Some("@bob"), None, PUBLIC),
        ),
        (
            "phone.@alice",
            parsed("phone", None, Some("@alice"), None, NONE),
        ),
        ("hello@", parsed("hello", None, Some("@"), None, NONE)),
        (
            ":x@alice",
            parsed("x", None, Some("@alice"), Some(""), NONE),
        ),
        // PKAM and encryption private keys.
        (
            "privatekey:at_pkam_publickey",
            parsed("privatekey:at_pkam_publickey", None, None, None, NONE),
        ),
        (
            "privatekey:at_pkam_privatekey",
            parsed("privatekey:at_pkam_privatekey", None, None, None, NONE),
        ),
        (
            "privatekey:privatekey@alice",
            parsed("privatekey:privatekey", None, Some("@alice"), None, NONE),
        ),
    ];
    for (key, expected) in table {
        assert_eq!(parse_at_key(key), Some(expected.clone()), "{key:?}");
        assert_eq!(ParsedAtKey::parse(key), Ok(expected), "{key:?}");
    }
}

#[test]
fn parse_failures() {
    let cases = [
        ("", "NoAtSign"),
        ("hello", "NoAtSign"),
        ("configkey", "NoAtSign"),
        ("my phone@alice", "ContainsSpace"),
        ("cached:phone@bob", "MissingCachedSegment"),
        ("cached:public@bob", "MissingCachedSegment"),
        ("privatekey:privatekey", "EncryptionKeyWithoutOwner"),
    ];
    for (key, variant) in cases {
        assert_eq!(parse_at_key(key), None, "{key:?}");
        let err = ParsedAtKey::parse(key).unwrap_err();
        let name = match &err {
            KeyParseError::NoAtSign { .. } => "NoAtSign",
            KeyParseError::ContainsSpace { .. } => "ContainsSpace",
            KeyParseError::MissingCachedSegment { .. } => "MissingCachedSegment",
            KeyParseError::EncryptionKeyWithoutOwner { .. } => "EncryptionKeyWithoutOwner",
        };
        assert_eq!(name, variant, "{key:?}");
        assert_eq!(err.key(), key);
    }
}
