//! BEHAVIOR 2.6 (namespaces), 4.2-4.5 (sync filter examples, alwaysInclude, authorisation),
//! API-5.0 4.8 and open point 47 (last commit id for a filter).

use at_persistence_secondary_server::key::{
    always_include_in_sync, is_namespace_authorised, namespace_of, KeyParseError, SyncRule,
};
use at_persistence_secondary_server::PersistenceError;

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn rule(regex: Option<&str>, enrolled: Option<&[&str]>) -> SyncRule {
    SyncRule::new(regex, enrolled.map(strings)).expect("valid rule")
}

// ---------------------------------------------------------------------------------------
// 2.6 Namespace of a key

#[test]
fn namespace_table() {
    let table: &[(&str, Option<&str>)] = &[
        ("phone.wavi@alice", Some("wavi")),
        ("@bob:phone.wavi@alice", Some("wavi")),
        ("public:phone.wavi@alice", Some("wavi")),
        ("cached:public:phone.buzz@bob", Some("buzz")),
        ("cached:@bob:city.address.my_app@alice", Some("my_app")),
        ("a.b.c@alice", Some("c")),
        ("phone.WAVI@alice", Some("wavi")),
        ("shared_key.bob@alice", Some("bob")),
        ("@bob:shared_key.bob@alice", Some("bob")),
        ("phone@alice", None),
        ("public:publickey@alice", None),
        ("@bob:shared_key@alice", None),
        ("phone.@alice", None),
        ("public:@bob:phone@alice", None),
        ("privatekey:at_pkam_publickey", None),
        ("privatekey:at_pkam_privatekey", None),
        ("privatekey:privatekey@alice", None),
        ("private:apkam.__manage@alice", Some("__manage")),
        // Three segments parse; the entity segment "@bob" has no namespace.
        ("cached:public:@bob", None),
    ];
    for &(key, expected) in table {
        assert_eq!(
            namespace_of(key).as_ref().map(|ns| ns.as_deref()),
            Ok(expected),
            "{key:?}"
        );
    }
}

#[test]
fn namespace_parse_failures() {
    let owned = |key: &str| key.to_string();
    let table = [
        (
            "configkey",
            KeyParseError::NoAtSign {
                key: owned("configkey"),
            },
        ),
        (
            "_latestnotificationidv2",
            KeyParseError::NoAtSign {
                key: owned("_latestnotificationidv2"),
            },
        ),
        (
            "my phone.wavi@alice",
            KeyParseError::ContainsSpace {
                key: owned("my phone.wavi@alice"),
            },
        ),
        // Both crash Dart with a range error (open point 20).
        (
            "cached:phone@bob",
            KeyParseError::MissingCachedSegment {
                key: owned("cached:phone@bob"),
            },
        ),
        (
            "cached:public",
            KeyParseError::NoAtSign {
                key: owned("cached:public"),
            },
        ),
        (
            "privatekey:privatekey",
            KeyParseError::EncryptionKeyWithoutOwner {
                key: owned("privatekey:privatekey"),
            },
        ),
    ];
    for (key, expected) in table {
        assert_eq!(namespace_of(key), Err(expected.clone()), "{key:?}");
        assert_eq!(expected.key(), key);
        assert!(expected.to_string().contains(key));
    }
}

// ---------------------------------------------------------------------------------------
// 4.4 alwaysInclude

#[test]
fn always_include_table() {
    let yes = [
        "@bob:shared_key@alice",
        "shared_key.bob@alice",
        "@bob:shared_key.bob@alice",
        "my_shared_key.wavi@alice",
        "bob:test_shared_key.buzz@alice",
        "public:publickey@alice",
        "public:publickeyfoo.wavi@alice",
        "public:phone@alice",
        "public:__secret@alice",
        "public:signing_publickey@alice",
    ];
    let no = [
        "bob:test_shared_key@alice",
        "cached:@alice:shared_key@bob",
        "cached:public:publickey@bob",
        "public:phone.wavi@alice",
        "phone@alice",
        "@alice:signing_privatekey@alice",
        "configkey",
    ];
    for key in yes {
        assert!(
            always_include_in_sync(key),
            "{key:?} should be always included"
        );
    }
    for key in no {
        assert!(
            !always_include_in_sync(key),
            "{key:?} should not be always included"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4.5 authorised

#[test]
fn authorised_table() {
    let wavi = strings(&["wavi"]);
    let star = strings(&["*"]);
    // (key, enrolled [wavi], enrolled [*], none)
    let table = [
        ("phone.wavi@alice", true, true, true),
        ("@bob:phone.wavi@alice", true, true, true),
        ("public:phone.wavi@alice", true, true, true),
        ("cached:public:phone.buzz@bob", false, true, true),
        ("a.b.c@alice", false, true, true),
        ("phone@alice", true, true, true),
        ("public:publickey@alice", true, true, true),
        ("@bob:shared_key@alice", true, true, true),
        ("shared_key.bob@alice", false, true, true),
        ("configkey", true, true, true),
        ("CONFIGKEY", true, true, true),
        ("_latestnotificationidv2", false, false, false),
        ("my phone.wavi@alice", false, false, false),
        ("cached:phone@bob", false, false, false),
    ];
    for (key, with_wavi, with_star, without) in table {
        assert_eq!(
            is_namespace_authorised(key, Some(&wavi)),
            with_wavi,
            "{key:?} [wavi]"
        );
        assert_eq!(
            is_namespace_authorised(key, Some(&star)),
            with_star,
            "{key:?} [*]"
        );
        assert_eq!(is_namespace_authorised(key, None), without, "{key:?} none");
        // An empty enrollment is no enrollment.
        assert_eq!(
            is_namespace_authorised(key, Some(&[])),
            without,
            "{key:?} []"
        );
    }
    // The namespace comparison is exact, against the lower-cased namespace.
    assert!(is_namespace_authorised(
        "phone.WAVI@alice",
        Some(&strings(&["wavi"]))
    ));
    assert!(!is_namespace_authorised(
        "phone.wavi@alice",
        Some(&strings(&["WAVI"]))
    ));
    assert!(is_namespace_authorised(
        "phone.buzz@alice",
        Some(&strings(&["wavi", "buzz"]))
    ));
}

// ---------------------------------------------------------------------------------------
// 4.2 examples, as pure filtering over a modelled commit log

/// A commit log reduced to what the rule sees: one retained entry per atKey, ids from 0.
#[derive(Default)]
struct Log {
    next_id: i64,
    entries: Vec<(i64, String)>,
}

impl Log {
    fn with(keys: &[&str]) -> Log {
        let mut log = Log::default();
        for key in keys {
            log.commit(key);
        }
        log
    }

    fn commit(&mut self, key: &str) {
        self.entries.retain(|(_, k)| k != key);
        self.entries.push((self.next_id, key.to_string()));
        self.next_id += 1;
    }

    fn high_water_mark(&self) -> i64 {
        self.next_id - 1
    }

    /// sync(from none, rule): the admitted keys in id order.
    fn sync(&self, rule: &SyncRule) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(_, key)| rule.admits(key))
            .map(|(_, key)| key.as_str())
            .collect()
    }

    /// The API-5.0 4.8 helper: the mark when unfiltered, else the highest counted id.
    fn last(&self, rule: &SyncRule) -> Option<i64> {
        if rule.is_unfiltered() {
            return Some(self.high_water_mark());
        }
        self.entries
            .iter()
            .filter(|(_, key)| rule.counts_toward_last_commit_id(key))
            .map(|(id, _)| *id)
            .max()
    }
}

#[test]
fn last_commit_id_for_a_regex() {
    let mut log = Log::with(&[
        "public:location_1.wavi@alice",
        "public:phone.buzz@alice",
        "public:location_2.wavi@alice",
        "public:email.buzz@alice",
    ]);
    assert_eq!(log.last(&rule(Some("buzz"), None)), Some(3));
    assert_eq!(log.last(&rule(Some("wavi"), None)), Some(2));

    // location_1 +, location_2 -, phone.buzz -, email.buzz - (ids 4-7).
    for key in [
        "public:location_1.wavi@alice",
        "public:location_2.wavi@alice",
        "public:phone.buzz@alice",
        "public:email.buzz@alice",
    ] {
        log.commit(key);
    }
    assert_eq!(log.last(&rule(Some("buzz"), None)), Some(7));
    assert_eq!(log.last(&rule(Some("wavi"), None)), Some(5));

    let log = Log::with(&["public:phone.buzz@alice", "public:email.wavi@alice"]);
    assert_eq!(log.last(&rule(Some(".buzz"), None)), Some(0));
    assert_eq!(log.last(&rule(Some("nothing-matches"), None)), None);
}

#[test]
fn last_commit_id_with_enrolled_namespaces() {
    let log = Log::with(&[
        "phone.buzz@alice",
        "phone.wavi@alice",
        "location.buzz@alice",
    ]);
    assert_eq!(log.last(&rule(Some(".buzz"), Some(&["buzz"]))), Some(2));

    // Open point 47: `.*` with an enrollment lacking `*` is filtered.
    let log = Log::with(&["phone.buzz@alice", "phone.wavi@alice"]);
    let dot_star_buzz = rule(Some(".*"), Some(&["buzz"]));
    assert!(!dot_star_buzz.is_unfiltered());
    assert_eq!(log.last(&dot_star_buzz), Some(0));
    // Whereas an enrollment holding `*` is unfiltered and answers the mark.
    assert_eq!(log.last(&rule(Some(".*"), Some(&["buzz", "*"]))), Some(1));
}

#[test]
fn manage_keys_and_configkey_never_count() {
    // "." is a filter (not exactly ".*") that matches every non-empty key.
    let all = rule(Some("."), None);
    assert!(!all.is_unfiltered());
    for key in ["apkam.__manage@alice", "configkey", "ConfigKey"] {
        assert!(all.admits(key), "{key:?} is admitted");
        assert!(
            !all.counts_toward_last_commit_id(key),
            "{key:?} never counts"
        );
    }
    for key in [
        "enrollment.__atserver@alice",
        "phone.wavi@alice",
        "configkey@alice",
    ] {
        assert!(all.counts_toward_last_commit_id(key), "{key:?} counts");
    }
    // Counting still requires admission.
    let buzz = rule(Some("buzz"), None);
    assert!(!buzz.counts_toward_last_commit_id("phone.wavi@alice"));
    assert!(!all.counts_toward_last_commit_id("_latestnotificationid"));

    let log = Log::with(&["phone.wavi@alice", "configkey", "apkam.__manage@alice"]);
    assert_eq!(log.last(&all), Some(0));
}

#[test]
fn sync_examples() {
    let everything = rule(None, None);
    let dot_buzz = rule(Some(".buzz"), None);

    let log = Log::with(&[
        "@bob:shared_key@alice",
        "shared_key.bob@alice",
        "bob:test_shared_key@alice",
    ]);
    assert_eq!(
        log.sync(&dot_buzz),
        ["@bob:shared_key@alice", "shared_key.bob@alice"]
    );

    let log = Log::with(&[
        "@bob:shared_key@alice",
        "shared_key.bob@alice",
        "bob:test_shared_key.buzz@alice",
    ]);
    assert_eq!(
        log.sync(&dot_buzz),
        [
            "@bob:shared_key@alice",
            "shared_key.bob@alice",
            "bob:test_shared_key.buzz@alice"
        ]
    );

    let log = Log::with(&["public:phone@alice", "public:email@alice"]);
    assert_eq!(
        log.sync(&everything),
        ["public:phone@alice", "public:email@alice"]
    );

    let log = Log::with(&[
        "public:phone.buzz@alice",
        "public:email.wavi@alice",
        "public:location@alice",
    ]);
    assert_eq!(
        log.sync(&dot_buzz),
        ["public:phone.buzz@alice", "public:location@alice"]
    );
}

#[test]
fn enrollment_hides_always_included_keys_of_other_namespaces() {
    // Open point 21: shared_key.bob@alice has namespace "bob".
    let wavi_only = rule(Some("^$"), Some(&["wavi"]));
    assert!(!wavi_only.admits("shared_key.bob@alice"));
    assert!(wavi_only.admits("@bob:shared_key@alice"));
    assert!(wavi_only.admits("public:publickey@alice"));
    assert!(
        !wavi_only.admits("phone.wavi@alice"),
        "regex ^$ matches nothing"
    );
    assert!(rule(Some("wavi"), Some(&["wavi"])).admits("phone.wavi@alice"));
    assert!(!rule(Some("buzz"), Some(&["wavi"])).admits("phone.buzz@alice"));
}

#[test]
fn regex_is_a_case_sensitive_search() {
    let upper = rule(Some("WAVI"), None);
    assert!(!upper.admits("phone.wavi@alice"));
    assert!(upper.regex_matches("PHONE.WAVI@ALICE"));
    let anchored = rule(Some("^phone"), None);
    assert!(anchored.admits("phone.wavi@alice"));
    assert!(!anchored.admits("@bob:phone.wavi@alice"));
    assert!(rule(Some(""), None).regex_matches("anything"));
}

#[test]
fn unfiltered_cases() {
    type Case<'a> = (Option<&'a str>, Option<&'a [&'a str]>, bool);
    let cases: &[Case] = &[
        (None, None, true),
        (Some(".*"), None, true),
        (Some(".*"), Some(&[]), true),
        (None, Some(&["*"]), true),
        (Some(".*"), Some(&["buzz", "*"]), true),
        (Some(".*"), Some(&["buzz"]), false),
        (None, Some(&["buzz"]), false),
        (Some("buzz"), None, false),
        (Some("buzz"), Some(&["*"]), false),
        (Some(".+"), None, false),
        (Some(""), None, false),
    ];
    for &(regex, enrolled, expected) in cases {
        assert_eq!(
            rule(regex, enrolled).is_unfiltered(),
            expected,
            "{regex:?} {enrolled:?}"
        );
    }
    assert!(SyncRule::unfiltered().is_unfiltered());
}

#[test]
fn the_unfiltered_rule_admits_every_parseable_key() {
    let all = SyncRule::unfiltered();
    for key in [
        "phone.wavi@alice",
        "private:x@alice",
        "configkey",
        "cached:public:x@bob",
    ] {
        assert!(all.admits(key), "{key:?}");
    }
    for key in [
        "_latestnotificationid",
        "__",
        "my phone@alice",
        "privatekey:privatekey",
    ] {
        assert!(!all.admits(key), "{key:?}");
    }
}

#[test]
fn rule_accessors_report_their_inputs() {
    let r = rule(Some("wavi"), Some(&["wavi", "buzz"]));
    assert_eq!(r.regex(), Some("wavi"));
    assert_eq!(
        r.enrolled_namespaces(),
        Some(&strings(&["wavi", "buzz"])[..])
    );
    assert!(r.authorises("x.buzz@alice"));
    assert!(!r.authorises("x.other@alice"));
    let none = rule(None, None);
    assert_eq!(none.regex(), None);
    assert_eq!(none.enrolled_namespaces(), None);
}

#[test]
fn bad_regexes_are_typed_errors() {
    // Look-around and back-references are outside the linear-time dialect (open point 16).
    for pattern in ["(", "(?<=a)b", "a(?=b)", r"(a)\1", "[z-a]"] {
        match SyncRule::new(Some(pattern), None) {
            Err(PersistenceError::InvalidRegex {
                pattern: given,
                reason,
            }) => {
                assert_eq!(given, pattern);
                assert!(!reason.is_empty());
            }
            other => panic!("{pattern:?}: expected InvalidRegex, got {other:?}"),
        }
    }
}

#[test]
fn sync_rule_is_shareable() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<SyncRule>();
    let r = rule(Some("buzz"), Some(&["buzz"]));
    let copy = r.clone();
    let handle = std::thread::spawn(move || copy.admits("phone.buzz@alice"));
    assert!(handle.join().unwrap());
    assert!(format!("{r:?}").contains("buzz"));
}
