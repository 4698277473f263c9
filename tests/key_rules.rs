//! BEHAVIOR 2.1-2.5: normalisation, UTF-7, length limits and the 125-row key type table.

use at_persistence_secondary_server::key::{
    always_include_in_sync, canonical_key, check_key_length, classify, is_commit_skipped,
    utf7_decode, utf7_encode, utf7_len, validate_at_sign, validate_key, validate_notification_id,
    KeyType, SyncRule, MAX_CACHED_KEY_LENGTH, MAX_KEY_LENGTH,
};
use at_persistence_secondary_server::PersistenceError;

/// The "commit" column: a server write creates a commit entry (`Yes`), returns -1
/// (`Skip`), or "—" (`Dash`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cm {
    Yes,
    Skip,
    Dash,
}

/// The "sync" column: always included (`Yes`), not always included (`No`), never synced
/// (`Never`), or "—" (`Dash`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sy {
    Yes,
    No,
    Never,
    Dash,
}

use KeyType::*;

/// BEHAVIOR 2.5, in order. `{55a}` stands for 55 × `a`, `{56H}` for 56 × `💙`, and so on.
const TABLE: &[(u32, &str, KeyType, Cm, Sy)] = &[
    (1, "public:phone.wavi@bob", PublicKey, Cm::Yes, Sy::No),
    (2, "public:phone@bob", PublicKey, Cm::Yes, Sy::Yes),
    (3, "public:p.b@bob", PublicKey, Cm::Yes, Sy::No),
    (4, "public:pho_-ne.b@bob", PublicKey, Cm::Yes, Sy::No),
    (5, "public:phone😀.buzz@bob💙", PublicKey, Cm::Yes, Sy::No),
    (
        6,
        "public:phone.buzz@jagann_a-d_h",
        PublicKey,
        Cm::Yes,
        Sy::No,
    ),
    (7, "public:phone@{55a}", PublicKey, Cm::Yes, Sy::Yes),
    (8, "public:__secretkey@cia", PublicKey, Cm::Yes, Sy::Yes),
    (9, "public:_secretkey@test", PublicKey, Cm::Skip, Sy::Yes),
    (10, "public:_location@alice", PublicKey, Cm::Skip, Sy::Yes),
    (11, "public:__location@alice", PublicKey, Cm::Yes, Sy::Yes),
    (
        12,
        "public:publickey.wavi@alice",
        PublicKey,
        Cm::Yes,
        Sy::Yes,
    ),
    (13, "public:shared_key@alice", PublicKey, Cm::Yes, Sy::Yes),
    (14, "public:blocklist@☎️_0002", PublicKey, Cm::Yes, Sy::Yes),
    (
        15,
        "public:signing_privatekey@allen",
        PublicKey,
        Cm::Yes,
        Sy::Yes,
    ),
    (16, "private:phone.buzz@bob", PrivateKey, Cm::Skip, Sy::No),
    (
        17,
        "private:@bob:phone.buzz@bob",
        PrivateKey,
        Cm::Skip,
        Sy::No,
    ),
    (18, "private:testkey@alice", PrivateKey, Cm::Skip, Sy::No),
    (
        19,
        "private:@bob💙:phone😀@bob💙",
        PrivateKey,
        Cm::Skip,
        Sy::No,
    ),
    (20, "phone@bob", SelfKey, Cm::Yes, Sy::No),
    (21, "phone.buzz@bob", SelfKey, Cm::Yes, Sy::No),
    (22, "@bob:phone.buzz@bob", SelfKey, Cm::Yes, Sy::No),
    (23, "@bob:phone@bob", SelfKey, Cm::Yes, Sy::No),
    (
        24,
        "_latestnotificationidv2@client",
        SelfKey,
        Cm::Yes,
        Sy::No,
    ),
    (25, "configkey@alice123", SelfKey, Cm::Yes, Sy::No),
    (26, "__hidden.wavi@alice", SelfKey, Cm::Yes, Sy::No),
    (27, "phone.wavi@test_user_1", SelfKey, Cm::Yes, Sy::No),
    (
        28,
        "sample_create_key_1🛠.wavi@test_user_1",
        SelfKey,
        Cm::Yes,
        Sy::No,
    ),
    (29, "emoji_🛠️.wavi@emoji🛠️", SelfKey, Cm::Yes, Sy::No),
    (
        30,
        "@alice:signing_publickey@alice",
        SelfKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        31,
        "@☎️_0002:signing_publickey@☎️_0002",
        SelfKey,
        Cm::Yes,
        Sy::No,
    ),
    (32, "phone@{55H}", SelfKey, Cm::Dash, Sy::Dash),
    (33, "あ@alice", SelfKey, Cm::Yes, Sy::No),
    (34, "ɐ@alice", SelfKey, Cm::Yes, Sy::No),
    (35, "@alice:phone.wavi@bob", SharedKey, Cm::Yes, Sy::No),
    (36, "@alice:phone@bob", SharedKey, Cm::Yes, Sy::No),
    (
        37,
        "@alice💙:phone😀.buzz@bob💙",
        SharedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        38,
        "@sita_ram:phone.buzz@jagann_a-d_h",
        SharedKey,
        Cm::Yes,
        Sy::No,
    ),
    (39, "@{55b}:phone@alice", SharedKey, Cm::Yes, Sy::No),
    (40, "@bob:my_shared_key@alice", SharedKey, Cm::Yes, Sy::No),
    (41, "@bob:publickey@alice", SharedKey, Cm::Yes, Sy::No),
    (
        42,
        "cached:public:phone.buzz@bob",
        CachedPublicKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        43,
        "cached:public:phone@bob",
        CachedPublicKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        44,
        "cached:public:phone😀.buzz@bob💙",
        CachedPublicKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        45,
        "cached:@alice:phone.buzz@bob",
        CachedSharedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        46,
        "cached:@alice:phone@bob",
        CachedSharedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        47,
        "cached:@bob:phone@bob",
        CachedSharedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        48,
        "cached:@alice:shared_key@bob",
        CachedSharedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        49,
        "cached:@sitaram💙:phone😀.buzz@jagannadh💙",
        CachedSharedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        50,
        "local:latestnotification.wavi@bob",
        LocalKey,
        Cm::Skip,
        Sy::No,
    ),
    (51, "local:phone@alice", LocalKey, Cm::Skip, Sy::No),
    (52, "local:phone😀@alice💙", LocalKey, Cm::Skip, Sy::No),
    (53, "shared_key.bob@alice", ReservedKey, Cm::Yes, Sy::Yes),
    (54, "@bob:shared_key@alice", ReservedKey, Cm::Yes, Sy::Yes),
    (55, "@reno:shared_key@ajax", ReservedKey, Cm::Yes, Sy::Yes),
    (
        56,
        "private:blocklist@☎️_0002",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (57, "private:blocklist@alice", ReservedKey, Cm::Skip, Sy::No),
    (
        58,
        "@allen:signing_privatekey@allen",
        ReservedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        59,
        "@bob:signing_privatekey@alice",
        ReservedKey,
        Cm::Yes,
        Sy::No,
    ),
    (60, "public:publickey@alice", ReservedKey, Cm::Yes, Sy::Yes),
    (
        61,
        "public:signing_publickey@alice",
        ReservedKey,
        Cm::Yes,
        Sy::Yes,
    ),
    (
        62,
        "public:signing_publickey@☎️_0002",
        ReservedKey,
        Cm::Yes,
        Sy::Yes,
    ),
    (
        63,
        "privatekey:at_pkam_publickey",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (
        64,
        "privatekey:at_pkam_privatekey",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (65, "privatekey:privatekey", ReservedKey, Cm::Skip, Sy::No),
    (
        66,
        "privatekey:self_encryption_key",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (67, "privatekey:at_secret", ReservedKey, Cm::Skip, Sy::No),
    (
        68,
        "privatekey:at_secret_deleted",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (
        69,
        "privatekey:signing_keypair_generated",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (
        70,
        "privatekey:commitlogcompactionstats",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (
        71,
        "privatekey:accesslogcompactionstats",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (
        72,
        "privatekey:notificationcompactionstats",
        ReservedKey,
        Cm::Skip,
        Sy::No,
    ),
    (73, "configkey", ReservedKey, Cm::Yes, Sy::No),
    (74, "_latestnotificationid", ReservedKey, Cm::Yes, Sy::Never),
    (
        75,
        "_latestnotificationidv2",
        ReservedKey,
        Cm::Yes,
        Sy::Never,
    ),
    (76, "__", ReservedKey, Cm::Yes, Sy::Never),
    (77, "_foo.bar", ReservedKey, Cm::Yes, Sy::Never),
    (
        78,
        "cached:public:publickey@bob",
        ReservedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        79,
        "cached:public:signing_publickey@bob",
        ReservedKey,
        Cm::Yes,
        Sy::No,
    ),
    (
        80,
        "cached:@alice:shared_key.bob@alice",
        ReservedKey,
        Cm::Yes,
        Sy::Yes,
    ),
    (
        81,
        "my_shared_key.wavi@alice",
        ReservedKey,
        Cm::Yes,
        Sy::Yes,
    ),
    (82, "shared_key.wavi@alice", ReservedKey, Cm::Yes, Sy::Yes),
    (
        83,
        "bob:test_shared_key.buzz@alice",
        ReservedKey,
        Cm::Yes,
        Sy::Yes,
    ),
    (84, "@bob:shared_key@alice@x", ReservedKey, Cm::Yes, Sy::Yes),
    (
        85,
        "public:privatekey:at_secret",
        ReservedKey,
        Cm::Yes,
        Sy::Yes,
    ),
    (86, "public:phone@{56a}", InvalidKey, Cm::Dash, Sy::Dash),
    (87, "phone@{56H}", InvalidKey, Cm::Dash, Sy::Dash),
    (88, "@{56b}:phone@alice", InvalidKey, Cm::Dash, Sy::Dash),
    (89, "public:publickey", InvalidKey, Cm::Dash, Sy::Dash),
    (
        90,
        "public:signing_publickey",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (91, "private:blocklist", InvalidKey, Cm::Dash, Sy::Dash),
    (92, "@bob:shared_key", InvalidKey, Cm::Dash, Sy::Dash),
    (93, "@bob:shared_key@", InvalidKey, Cm::Dash, Sy::Dash),
    (94, "shared_key.bob", InvalidKey, Cm::Dash, Sy::Dash),
    (95, "shared_key", InvalidKey, Cm::Dash, Sy::Dash),
    (
        96,
        "@allen:signing_privatekey",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (97, "signing_privatekey", InvalidKey, Cm::Dash, Sy::Dash),
    (
        98,
        "privatekey:at_pkam_publickey@alice123",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        99,
        "privatekey:privatekey@alice",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        100,
        "☎️@owner:publickey@owner",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        101,
        "public:at_pkam_publickey",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (102, "privatekey:configkey", InvalidKey, Cm::Dash, Sy::Dash),
    (
        103,
        "privatekey:_latestnotificationidv2",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (104, "privatekey:mykey", InvalidKey, Cm::Dash, Sy::Dash),
    (
        105,
        "privatekey:testkey@alice",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        106,
        "bob:test_shared_key@alice",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (107, "hello123", InvalidKey, Cm::Dash, Sy::Dash),
    (108, "hello@", InvalidKey, Cm::Dash, Sy::Dash),
    (109, "_", InvalidKey, Cm::Dash, Sy::Dash),
    (110, "my phone@alice", InvalidKey, Cm::Dash, Sy::Dash),
    (111, "é@alice", InvalidKey, Cm::Dash, Sy::Dash),
    (112, "日本@alice", InvalidKey, Cm::Dash, Sy::Dash),
    (113, "phone@alice.com", InvalidKey, Cm::Dash, Sy::Dash),
    (114, "phone.wavi@alice@bob", InvalidKey, Cm::Dash, Sy::Dash),
    (
        115,
        "publicc:phone.buzz@bob",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (116, "public::@bob", InvalidKey, Cm::Dash, Sy::Dash),
    (117, ":public:foo.bar@bob", InvalidKey, Cm::Dash, Sy::Dash),
    (
        118,
        "public:@bob:phone.buzz@bob",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        119,
        "public:phone.buzz@bo#b",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (120, "cached:phone@bob", InvalidKey, Cm::Dash, Sy::Dash),
    (
        121,
        "local:@bob:phone@alice",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        122,
        "@bob:@carol:phone@alice",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        123,
        "cached:public:cached:public:privateaccount.wavi@dying36dragonfly",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        124,
        "public:@public:image.wavi@colin",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
    (
        125,
        "@bob0123456789012345678901234567890123456789012345extracharshere:phone.buzz@bob",
        InvalidKey,
        Cm::Dash,
        Sy::Dash,
    ),
];

/// Expands the `{<n><c>}` placeholders of [`TABLE`].
fn expand(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').expect("closing brace");
        let spec = &rest[open + 1..close];
        let (count, unit) = spec.split_at(spec.len() - 1);
        let unit = match unit {
            "H" => "\u{1F499}",
            other => other,
        };
        out.push_str(&unit.repeat(count.parse().expect("count")));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_table_has_125_rows_numbered_in_order() {
    assert_eq!(TABLE.len(), 125);
    for (i, row) in TABLE.iter().enumerate() {
        assert_eq!(row.0 as usize, i + 1);
    }
    assert_eq!(expand("public:phone@{55a}").len(), 13 + 55);
    assert_eq!(expand("phone@{56H}").chars().count(), 6 + 56);
    assert_eq!(
        expand("@{55b}:phone@alice"),
        format!("@{}:phone@alice", "b".repeat(55))
    );
}

#[test]
fn key_type_column() {
    let mut failures = Vec::new();
    for &(n, template, expected, _, _) in TABLE {
        let key = expand(template);
        let got = classify(&key);
        if got != expected {
            failures.push(format!(
                "row {n} {key:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn upper_case_rows_classify_the_same_after_lower_casing() {
    // The keystore lower-cases before classifying (BEHAVIOR 2.1, 2.4).
    for &(n, template, expected, _, _) in TABLE {
        let key = expand(template);
        assert_eq!(
            classify(&key.to_uppercase().to_lowercase()),
            expected,
            "row {n} {key:?}"
        );
    }
}

#[test]
fn commit_column() {
    let mut failures = Vec::new();
    for &(n, template, _, commit, _) in TABLE {
        let key = expand(template);
        let expected = match commit {
            Cm::Yes => false,
            Cm::Skip => true,
            Cm::Dash => continue,
        };
        if is_commit_skipped(&key) != expected {
            failures.push(format!("row {n} {key:?}: expected skipped = {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sync_column() {
    let unfiltered = SyncRule::new(None, None).unwrap();
    let mut failures = Vec::new();
    for &(n, template, _, _, sync) in TABLE {
        let key = expand(template);
        let (always, admitted) = match sync {
            Sy::Yes => (true, None),
            Sy::No => (false, None),
            Sy::Never => (false, Some(false)),
            Sy::Dash => continue,
        };
        if always_include_in_sync(&key) != always {
            failures.push(format!(
                "row {n} {key:?}: expected alwaysInclude = {always}"
            ));
        }
        if let Some(admitted) = admitted {
            if unfiltered.admits(&key) != admitted {
                failures.push(format!("row {n} {key:?}: expected admitted = {admitted}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn validate_key_follows_the_table() {
    for &(n, template, expected, _, _) in TABLE {
        let key = expand(template);
        match validate_key(&key) {
            Ok(canonical) => {
                assert_ne!(expected, InvalidKey, "row {n} {key:?} was accepted");
                assert_eq!(canonical, key, "row {n}: table keys are already canonical");
            }
            Err(PersistenceError::InvalidKey { key: given, reason }) => {
                assert_eq!(
                    expected, InvalidKey,
                    "row {n} {key:?} was refused: {reason}"
                );
                assert_eq!(given, key);
                assert!(!reason.is_empty());
            }
            Err(other) => panic!("row {n}: unexpected error {other:?}"),
        }
    }
}

#[test]
fn every_valid_row_but_32_fits_the_length_rule() {
    for &(n, template, expected, _, _) in TABLE {
        let key = expand(template);
        if expected == InvalidKey {
            continue;
        }
        let result = check_key_length(&key, &key);
        if n == 32 {
            match result {
                Err(PersistenceError::KeyTooLong { len, max, .. }) => {
                    assert_eq!((len, max), (302, 248));
                }
                other => panic!("row 32: expected KeyTooLong, got {other:?}"),
            }
        } else {
            assert!(result.is_ok(), "row {n} {key:?}: {result:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2.1 Normalisation

#[test]
fn canonical_key_trims_lower_cases_and_drops_spaces() {
    let cases = [
        ("phone.wavi@alice", "phone.wavi@alice"),
        ("Phone.Wavi@Alice", "phone.wavi@alice"),
        (" phone.wavi@alice ", "phone.wavi@alice"),
        ("PHONE .wavi@alice", "phone.wavi@alice"),
        ("F o o", "foo"),
        // Dart trims U+FEFF too, and every Unicode White_Space character.
        ("\u{FEFF}phone@alice\u{FEFF}", "phone@alice"),
        (
            "\u{3000}\t\n phone@alice\u{85}\u{A0}\u{2028}",
            "phone@alice",
        ),
        // Only U+0020 is deleted inside the key.
        ("a\tb@alice", "a\tb@alice"),
        ("a\u{A0}b@alice", "a\u{A0}b@alice"),
        ("a\u{FEFF}b@alice", "a\u{FEFF}b@alice"),
        // Full Unicode lower-casing.
        ("ÉMOJI@ALICE", "émoji@alice"),
        ("", ""),
        ("   ", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(canonical_key(input), expected, "{input:?}");
        assert_eq!(
            canonical_key(expected),
            expected,
            "idempotent on {expected:?}"
        );
    }
}

#[test]
fn validate_key_uses_the_untrimmed_lower_case_form() {
    // Classification keeps spaces, so a padded key is refused...
    match validate_key(" phone@alice") {
        Err(PersistenceError::InvalidKey { key, reason }) => {
            assert_eq!(key, " phone@alice");
            assert!(reason.contains("space"), "{reason}");
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    // ...except where R1 (unanchored at the start) still finds its match.
    assert_eq!(
        validate_key(" privatekey:at_secret").unwrap(),
        "privatekey:at_secret"
    );
    // Upper case is fine: the key is lower-cased first and returned canonical.
    assert_eq!(
        validate_key("Phone.Wavi@Alice").unwrap(),
        "phone.wavi@alice"
    );
    assert_eq!(
        validate_key("@ALICE:phone@alice").unwrap(),
        "@alice:phone@alice"
    );
    assert_eq!(validate_key("configKey").unwrap(), "configkey");
    assert_eq!(
        validate_key("privatekey:commitLogCompactionStats").unwrap(),
        "privatekey:commitlogcompactionstats"
    );
    assert_eq!(classify("@alice:phone@alice"), SelfKey);
    assert_eq!(classify(&"PUBLIC:Phone@Alice".to_lowercase()), PublicKey);
}

#[test]
fn validate_key_errors_carry_the_key_as_given_and_the_rule() {
    let cases = [
        ("Hello123", "'@owner'"),
        ("hello@", "empty"),
        ("my phone@alice", "space"),
        ("É@alice", "U+00E9"),
        ("phone@alice.com", "'.'"),
        ("", "empty"),
        ("Public::@bob", "matches none"),
    ];
    for (input, fragment) in cases {
        match validate_key(input) {
            Err(PersistenceError::InvalidKey { key, reason }) => {
                assert_eq!(key, input);
                assert!(reason.contains(fragment), "{input:?}: {reason}");
            }
            other => panic!("{input:?}: expected InvalidKey, got {other:?}"),
        }
    }
    let long_owner = format!("phone@{}", "a".repeat(56));
    match validate_key(&long_owner) {
        Err(PersistenceError::InvalidKey { reason, .. }) => {
            assert!(reason.contains("56 characters"), "{reason}")
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// 2.2 UTF-7

#[test]
fn utf7_table() {
    let table = [
        ("phone.wavi@alice", "phone.wavi@alice", 16, 16),
        ("phone@bob\u{1F499}", "phone@bob+2D3cmQ-", 11, 17),
        (
            "emoji_\u{1F6E0}\u{FE0F}.wavi@emoji\u{1F6E0}\u{FE0F}",
            "emoji_+2D3e4P4P-.wavi@emoji+2D3e4P4P-",
            23,
            37,
        ),
        (
            "sample_create_key_1\u{1F6E0}.wavi@test_user_1",
            "sample_create_key_1+2D3e4A-.wavi@test_user_1",
            38,
            44,
        ),
        (
            "@alice\u{1F499}:phone\u{1F600}.buzz@bob\u{1F499}",
            "@alice+2D3cmQ-:phone+2D3eAA-.buzz@bob+2D3cmQ-",
            27,
            45,
        ),
        (
            "private:blocklist@\u{260E}\u{FE0F}_0002",
            "private:blocklist@+Jg7+Dw-_0002",
            25,
            31,
        ),
        ("a+b@alice", "a+-b@alice", 9, 10),
        ("~x", "+AH4-x", 2, 6),
        ("Hello, 世界", "Hello, +ThZ1TA-", 9, 15),
    ];
    for (input, encoded, len_in, len_out) in table {
        assert_eq!(input.encode_utf16().count(), len_in, "{input:?}");
        assert_eq!(utf7_encode(input), encoded, "{input:?}");
        assert_eq!(encoded.len(), len_out);
        assert_eq!(utf7_len(input), len_out, "{input:?}");
        assert_eq!(utf7_decode(encoded), input, "{encoded:?}");
    }
}

#[test]
fn utf7_direct_and_shifted_characters() {
    // TAB, LF and CR are direct; other controls, '\' and '~' (126) are shifted.
    assert_eq!(utf7_encode("a\tb\nc\rd"), "a\tb\nc\rd");
    assert_eq!(utf7_encode("\\"), "+AFw-");
    assert_eq!(utf7_encode("\u{7}"), "+AAc-");
    assert_eq!(utf7_encode("}"), "}");
    // '+' interrupts a shifted run.
    assert_eq!(utf7_encode("é+é"), "+AOk-+-+AOk-");
    assert_eq!(utf7_decode("+AOk-+-+AOk-"), "é+é");
    // A '-' after a shifted run survives the round trip.
    assert_eq!(utf7_decode(&utf7_encode("é-")), "é-");
    assert_eq!(utf7_decode("+-"), "+");
    // The closing '-' is optional on decode.
    assert_eq!(utf7_decode("+AOk"), "é");
}

// ---------------------------------------------------------------------------------------
// 2.3 Length limits

/// Deterministic pseudo-random lower-case letters and digits.
fn random_chars(count: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ALPHABET[(state >> 33) as usize % ALPHABET.len()] as char
        })
        .collect()
}

fn too_long(key: &str) -> (String, usize, usize) {
    let canonical = canonical_key(key);
    match check_key_length(key, &canonical) {
        Err(PersistenceError::KeyTooLong { key, len, max }) => (key, len, max),
        other => panic!("{key:?}: expected KeyTooLong, got {other:?}"),
    }
}

#[test]
fn length_examples() {
    let ok = format!("{}@test_user_1", random_chars(236, 1));
    assert_eq!(ok.len(), 248);
    assert!(check_key_length(&ok, &ok).is_ok());

    let over = format!("{}@test_user_1", random_chars(237, 2));
    assert_eq!(too_long(&over), (over.clone(), 249, MAX_KEY_LENGTH));

    let cached_ok = format!("cached:public:{}@test_user_1", random_chars(229, 3));
    assert_eq!(cached_ok.len(), 255);
    assert!(check_key_length(&cached_ok, &cached_ok).is_ok());

    let cached_over = format!("cached:public:{}@test_user_1", random_chars(245, 4));
    assert_eq!(
        too_long(&cached_over),
        (cached_over.clone(), 271, MAX_CACHED_KEY_LENGTH)
    );

    let hearts = format!("phone@{}", "\u{1F499}".repeat(55));
    assert_eq!(hearts.chars().count(), 61);
    assert_eq!(classify(&hearts), SelfKey);
    assert_eq!(too_long(&hearts), (hearts.clone(), 302, MAX_KEY_LENGTH));

    let emoji = "emoji_\u{1F6E0}\u{FE0F}.wavi@emoji\u{1F6E0}\u{FE0F}";
    assert!(check_key_length(emoji, emoji).is_ok());
}

#[test]
fn length_is_measured_on_the_canonical_form_and_reports_the_given_key() {
    // Upper case and spaces do not count: the canonical form is measured.
    let mixed = format!("  {} @TEST_USER_1  ", random_chars(236, 5).to_uppercase());
    assert!(check_key_length(&mixed, &canonical_key(&mixed)).is_ok());
    let mixed_over = format!(" {}@Test_User_1", random_chars(237, 6).to_uppercase());
    let (key, len, max) = too_long(&mixed_over);
    assert_eq!((key.as_str(), len, max), (mixed_over.as_str(), 249, 248));
}

#[test]
fn the_limit_is_on_utf7_not_on_characters() {
    // One heart encodes to 8 characters ("+2D3cmQ-").
    let at_limit = format!("{}\u{1F499}@alice", "a".repeat(234));
    assert_eq!(utf7_len(&at_limit), 248);
    assert_eq!(at_limit.chars().count(), 241);
    assert!(check_key_length(&at_limit, &at_limit).is_ok());
    let over = format!("{}\u{1F499}@alice", "a".repeat(235));
    assert_eq!(too_long(&over).1, 249);
    // '+' counts twice.
    let plus = format!("{}+@alice", "a".repeat(241));
    assert_eq!(plus.len(), 248);
    assert_eq!(too_long(&plus).1, 249);
    // Only a "cached:" prefix earns the higher limit, and it is tested on the canonical key.
    let public = format!("public:{}@alice", "a".repeat(242));
    assert_eq!(too_long(&public).2, MAX_KEY_LENGTH);
    let cached = format!("Cached:public:{}@alice", "a".repeat(235));
    assert!(check_key_length(&cached, &canonical_key(&cached)).is_ok());
}

#[test]
fn notification_id_length_counts_utf16_units() {
    let over = format!("{}@alice", random_chars(245, 7));
    assert_eq!(over.len(), 251);
    match validate_notification_id(&over) {
        Err(PersistenceError::KeyTooLong { key, len, max }) => {
            assert_eq!((key.as_str(), len, max), (over.as_str(), 251, 248));
        }
        other => panic!("expected KeyTooLong, got {other:?}"),
    }
    assert!(validate_notification_id(&"n".repeat(248)).is_ok());
    // A heart is two UTF-16 units (one char, four bytes).
    let hearts = format!("{}\u{1F499}", "a".repeat(246));
    assert!(validate_notification_id(&hearts).is_ok());
    let hearts_over = format!("{}\u{1F499}", "a".repeat(247));
    assert_eq!(hearts_over.chars().count(), 248);
    match validate_notification_id(&hearts_over) {
        Err(PersistenceError::KeyTooLong { len, .. }) => assert_eq!(len, 249),
        other => panic!("expected KeyTooLong, got {other:?}"),
    }
    // Ids are not keys: anything non-empty and short enough is fine.
    assert!(validate_notification_id("4f0c8c8e-6f5e-4f0a-9a43-1d2b7c3a9e01").is_ok());
    assert!(validate_notification_id(" My Id ").is_ok());
    match validate_notification_id("") {
        Err(PersistenceError::InvalidKey { key, reason }) => {
            assert_eq!(key, "");
            assert!(reason.contains("empty"), "{reason}");
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// atSigns

#[test]
fn at_sign_validation() {
    let valid = [
        "@alice".to_string(),
        "@ALICE".to_string(),
        "@test_user_1".to_string(),
        "@jagann_a-d_h".to_string(),
        "@alice\u{1F499}".to_string(),
        "@\u{260E}\u{FE0F}_0002".to_string(),
        "@\u{250}".to_string(),
        format!("@{}", "a".repeat(55)),
        format!("@{}", "\u{1F499}".repeat(55)),
    ];
    for at_sign in &valid {
        assert!(validate_at_sign(at_sign).is_ok(), "{at_sign:?}");
    }
    let invalid = [
        ("alice".to_string(), "'@'"),
        ("".to_string(), "'@'"),
        ("@".to_string(), "no characters"),
        (format!("@{}", "a".repeat(56)), "56 characters"),
        ("@al ice".to_string(), "' '"),
        ("@alice@bob".to_string(), "'@'"),
        ("@é".to_string(), "U+00E9"),
        ("@alice.com".to_string(), "'.'"),
        (" @alice".to_string(), "'@'"),
    ];
    for (at_sign, fragment) in &invalid {
        match validate_at_sign(at_sign) {
            Err(PersistenceError::InvalidConfig { field, reason }) => {
                assert_eq!(field, "at_sign");
                assert!(reason.contains(&format!("{at_sign:?}")), "{reason}");
                assert!(reason.contains(fragment), "{at_sign:?}: {reason}");
            }
            other => panic!("{at_sign:?}: expected InvalidConfig, got {other:?}"),
        }
    }
}
