//! The 5.x metadata builder: the worked cases B1-B18 and B7b of BEHAVIOR 1.3, the
//! builder-level cases of asserted_timestamps_test (API-5.0 section 9), and properties.

mod model_support;

use at_persistence_secondary_server::model::{
    build_metadata, AssertedTimestamps, AtMetaData, Timestamp,
};
use model_support::{t, ts};
use proptest::prelude::*;

const ALICE: &str = "@alice";

fn t0() -> Timestamp {
    ts("2023-06-01T12:00:00.000Z")
}

/// Builds at T and checks that the inputs were not modified.
fn build(
    new: Option<&AtMetaData>,
    existing: Option<&AtMetaData>,
    asserted: Option<&AssertedTimestamps>,
) -> AtMetaData {
    let (n0, e0, a0) = (new.cloned(), existing.cloned(), asserted.copied());
    let built = build_metadata(ALICE, new, existing, asserted, t());
    assert_eq!(new.cloned(), n0, "the new metadata was modified");
    assert_eq!(existing.cloned(), e0, "the existing metadata was modified");
    assert_eq!(asserted.copied(), a0);
    built
}

/// The fields every build stamps for a new record at T.
fn stamped_new() -> AtMetaData {
    AtMetaData {
        created_by: Some(ALICE.into()),
        updated_by: Some(ALICE.into()),
        created_at: Some(t()),
        updated_at: Some(t()),
        status: Some("active".into()),
        version: Some(0),
        ..Default::default()
    }
}

fn existing_b7() -> AtMetaData {
    // As a stored record would look: stamped by an earlier write at T0.
    AtMetaData {
        created_by: Some(ALICE.into()),
        updated_by: Some(ALICE.into()),
        created_at: Some(t0()),
        updated_at: Some(t0()),
        status: Some("active".into()),
        version: Some(3),
        ttl: Some(60_000),
        expires_at: Some(t0().plus_millis(60_000)),
        ttr: Some(10),
        refresh_at: Some(t0().plus_millis(10_000)),
        is_encrypted: Some(true),
        ..Default::default()
    }
}

#[test]
fn b1_new_key_without_metadata() {
    assert_eq!(build(None, None, None), stamped_new());
}

#[test]
fn b2_ttl_ttb_ttr_derive_dates() {
    let new = AtMetaData {
        ttl: Some(60_000),
        ttb: Some(10_000),
        ttr: Some(3_600),
        ..Default::default()
    };
    let r = build(Some(&new), None, None);
    assert_eq!(
        r,
        AtMetaData {
            ttl: Some(60_000),
            ttb: Some(10_000),
            ttr: Some(3_600),
            expires_at: Some(ts("2024-01-01T00:01:10Z")),
            available_at: Some(ts("2024-01-01T00:00:10Z")),
            refresh_at: Some(ts("2024-01-01T01:00:00Z")),
            ..stamped_new()
        }
    );
}

#[test]
fn b3_ttl_zero_means_no_expiry() {
    let new = AtMetaData {
        ttl: Some(0),
        expires_at: Some(ts("2030-01-01T00:00:00Z")),
        ..Default::default()
    };
    let r = build(Some(&new), None, None);
    assert_eq!(r.ttl, Some(0));
    assert_eq!(
        r.expires_at, None,
        "ttl 0 clears an expiresAt the metadata carried"
    );
}

#[test]
fn b4_ttr_minus_one_caches_forever() {
    let new = AtMetaData {
        ttr: Some(-1),
        refresh_at: Some(ts("2030-01-01T00:00:00Z")),
        ..Default::default()
    };
    let r = build(Some(&new), None, None);
    assert_eq!(r.ttr, Some(-1));
    assert_eq!(r.refresh_at, None);
}

#[test]
fn b5_ttr_zero_is_stored_and_derives_nothing() {
    let new = AtMetaData {
        ttr: Some(0),
        ..Default::default()
    };
    let r = build(Some(&new), None, None);
    assert_eq!(r.ttr, Some(0));
    assert_eq!(r.refresh_at, None);
    // ttr < -1 is stored as given too.
    let new = AtMetaData {
        ttr: Some(-7),
        ..Default::default()
    };
    let r = build(Some(&new), None, None);
    assert_eq!((r.ttr, r.refresh_at), (Some(-7), None));
}

#[test]
fn b6_negative_ttb_is_added_to_expiry_but_derives_no_availability() {
    let new = AtMetaData {
        ttl: Some(1_000),
        ttb: Some(-500),
        ..Default::default()
    };
    let r = build(Some(&new), None, None);
    assert_eq!(r.expires_at, Some(t().plus_millis(500)));
    assert_eq!(r.ttb, Some(-500));
    assert_eq!(r.available_at, None);
}

#[test]
fn b7_update_without_metadata_keeps_the_stored_metadata_and_restarts_expiry() {
    let existing = existing_b7();
    let r = build(None, Some(&existing), None);
    assert_eq!(
        r,
        AtMetaData {
            created_at: Some(t0()),
            updated_at: Some(t()),
            version: Some(4),
            ttl: Some(60_000),
            expires_at: Some(t().plus_millis(60_000)),
            ttr: Some(10),
            refresh_at: Some(t().plus_millis(10_000)),
            is_encrypted: Some(true),
            ..stamped_new()
        }
    );
}

#[test]
fn b7b_update_with_metadata_replaces_the_stored_metadata_wholesale() {
    let existing = existing_b7();
    let new = AtMetaData {
        is_binary: Some(true),
        ..Default::default()
    };
    let r = build(Some(&new), Some(&existing), None);
    assert_eq!(
        r,
        AtMetaData {
            created_at: Some(t0()),
            version: Some(4),
            is_binary: Some(true),
            ..stamped_new()
        }
    );
    assert_eq!(
        (r.ttl, r.expires_at),
        (None, None),
        "the key no longer expires"
    );
    assert_eq!((r.ttr, r.refresh_at, r.is_encrypted), (None, None, None));
}

#[test]
fn b8_ttl_zero_and_ttr_minus_one_clear_the_dates() {
    let existing = AtMetaData {
        ttl: Some(10_000),
        expires_at: Some(t0().plus_millis(10_000)),
        ..Default::default()
    };
    let new = AtMetaData {
        ttl: Some(0),
        ttr: Some(-1),
        ..Default::default()
    };
    let r = build(Some(&new), Some(&existing), None);
    assert_eq!((r.ttl, r.expires_at), (Some(0), None));
    assert_eq!((r.ttr, r.refresh_at), (Some(-1), None));
}

#[test]
fn b9_ttb_makes_the_key_unborn_again_on_update() {
    let existing = AtMetaData {
        ttb: Some(5_000),
        available_at: Some(t0().plus_millis(5_000)),
        ..Default::default()
    };
    let r = build(None, Some(&existing), None);
    assert_eq!(r.available_at, Some(t().plus_millis(5_000)));
    assert_eq!(r.ttb, Some(5_000));
}

#[test]
fn b10_existing_without_version_gives_version_zero() {
    let existing = AtMetaData {
        created_at: Some(t0()),
        ..Default::default()
    };
    let r = build(None, Some(&existing), None);
    assert_eq!(r.version, Some(0));
    assert_eq!(r.created_at, Some(t0()));
}

#[test]
fn b11_expires_at_without_ttl_is_kept() {
    let e = ts("2030-05-06T07:08:09.010Z");
    let new = AtMetaData {
        expires_at: Some(e),
        ..Default::default()
    };
    let r = build(Some(&new), None, None);
    assert_eq!(r.expires_at, Some(e));
    assert_eq!(r.ttl, None);
    // A negative ttl derives nothing either: the carried expiresAt stays.
    let new = AtMetaData {
        expires_at: Some(e),
        ttl: Some(-5),
        ..Default::default()
    };
    let r = build(Some(&new), None, None);
    assert_eq!((r.ttl, r.expires_at), (Some(-5), Some(e)));
}

#[test]
fn b12_immutable_true_is_sticky() {
    let existing = AtMetaData {
        immutable: Some(true),
        ..Default::default()
    };
    for new_value in [Some(false), None] {
        let new = AtMetaData {
            immutable: new_value,
            ..Default::default()
        };
        let r = build(Some(&new), Some(&existing), None);
        assert_eq!(r.immutable, Some(true), "new immutable {new_value:?}");
    }
    // A stored false is not sticky.
    let existing = AtMetaData {
        immutable: Some(false),
        ..Default::default()
    };
    let new = AtMetaData::default();
    assert_eq!(build(Some(&new), Some(&existing), None).immutable, None);
}

#[test]
fn b13_created_by_is_kept_updated_by_is_the_store() {
    let existing = AtMetaData {
        created_by: Some("@bob".into()),
        updated_by: Some("@bob".into()),
        ..Default::default()
    };
    let r = build(None, Some(&existing), None);
    assert_eq!(r.created_by.as_deref(), Some("@bob"));
    assert_eq!(r.updated_by.as_deref(), Some(ALICE));
    // The write's metadata names its own creator: kept too.
    let new = AtMetaData {
        created_by: Some("@carol".into()),
        ..Default::default()
    };
    let r = build(Some(&new), Some(&existing), None);
    assert_eq!(r.created_by.as_deref(), Some("@carol"));
}

#[test]
fn b14_asserted_created_at_beats_the_existing_one() {
    let t1 = ts("2020-01-02T03:04:05.678Z");
    let existing = AtMetaData {
        created_at: Some(t0()),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        created_at: Some(t1),
        ..Default::default()
    };
    let r = build(None, Some(&existing), Some(&asserted));
    assert_eq!(r.created_at, Some(t1));
}

#[test]
fn b15_asserted_expires_at_wins_over_ttl_which_is_kept() {
    let e = ts("2030-01-01T00:00:00Z");
    let new = AtMetaData {
        ttl: Some(60_000),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        expires_at: Some(e),
        ..Default::default()
    };
    let r = build(Some(&new), None, Some(&asserted));
    assert_eq!((r.expires_at, r.ttl), (Some(e), Some(60_000)));
}

#[test]
fn b16_asserted_expires_at_survives_ttl_zero() {
    let e = ts("2030-01-01T00:00:00Z");
    let new = AtMetaData {
        ttl: Some(0),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        expires_at: Some(e),
        ..Default::default()
    };
    let r = build(Some(&new), None, Some(&asserted));
    assert_eq!((r.expires_at, r.ttl), (Some(e), Some(0)));
}

#[test]
fn b17_derive_ttl_from_asserted_updated_at() {
    let u = ts("2021-02-03T04:05:06.789Z");
    let e = ts("2030-01-01T00:00:00Z");
    let asserted = AssertedTimestamps {
        updated_at: Some(u),
        expires_at: Some(e),
        derive_ttl: true,
        ..Default::default()
    };
    let r = build(None, None, Some(&asserted));
    assert_eq!(r.expires_at, Some(e));
    assert_eq!(r.updated_at, Some(u));
    assert_eq!(r.ttl, Some(e.millis_since(u)));
    assert_eq!(
        r.created_at,
        Some(t()),
        "createdAt is not derived from updatedAt"
    );
}

#[test]
fn b18_non_positive_derived_ttl_is_none_and_the_key_still_expires() {
    let u = ts("2021-02-03T04:05:06.789Z");
    for e in [u, u.minus_millis(1), ts("2019-01-01T00:00:00Z")] {
        let new = AtMetaData {
            ttl: Some(86_400_000),
            ..Default::default()
        };
        let asserted = AssertedTimestamps {
            updated_at: Some(u),
            expires_at: Some(e),
            derive_ttl: true,
            ..Default::default()
        };
        let r = build(Some(&new), None, Some(&asserted));
        assert_eq!(r.expires_at, Some(e));
        assert_eq!(r.ttl, None, "expiresAt {e}");
    }
}

// ---- asserted_timestamps_test, builder level -------------------------------------------

fn c_at() -> Timestamp {
    ts("2020-01-02T03:04:05.678Z")
}
fn u_at() -> Timestamp {
    ts("2021-02-03T04:05:06.789Z")
}
fn a_at() -> Timestamp {
    ts("2022-03-04T05:06:07.890Z")
}
fn e_at() -> Timestamp {
    ts("2030-01-01T00:00:00Z")
}

#[test]
fn asserted_created_at_wins_and_its_absence_keeps_the_existing_one() {
    let existing = AtMetaData {
        created_at: Some(ts("2019-06-01T00:00:00Z")),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        created_at: Some(c_at()),
        ..Default::default()
    };
    let new = AtMetaData::default();
    assert_eq!(
        build(Some(&new), Some(&existing), Some(&asserted)).created_at,
        Some(c_at())
    );
    assert_eq!(
        build(Some(&new), Some(&existing), None).created_at,
        Some(ts("2019-06-01T00:00:00Z"))
    );
    // An empty assertion is the same as none.
    assert_eq!(
        build(
            Some(&new),
            Some(&existing),
            Some(&AssertedTimestamps::default())
        ),
        build(Some(&new), Some(&existing), None)
    );
}

#[test]
fn asserted_updated_at_is_stored_and_its_absence_stamps_now() {
    let asserted = AssertedTimestamps {
        updated_at: Some(u_at()),
        ..Default::default()
    };
    let new = AtMetaData::default();
    assert_eq!(
        build(Some(&new), None, Some(&asserted)).updated_at,
        Some(u_at())
    );
    assert_eq!(build(Some(&new), None, None).updated_at, Some(t()));
}

#[test]
fn asserted_expires_at_with_ttl_keeps_the_ttl() {
    let new = AtMetaData {
        ttl: Some(60_000),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        expires_at: Some(e_at()),
        ..Default::default()
    };
    let r = build(Some(&new), None, Some(&asserted));
    assert_eq!((r.expires_at, r.ttl), (Some(e_at()), Some(60_000)));
}

#[test]
fn ttl_zero_with_asserted_expiry_with_and_without_derive() {
    let new = AtMetaData {
        ttl: Some(0),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        expires_at: Some(e_at()),
        ..Default::default()
    };
    let r = build(Some(&new), None, Some(&asserted));
    assert_eq!((r.expires_at, r.ttl), (Some(e_at()), Some(0)));

    let derived = AssertedTimestamps {
        derive_ttl: true,
        ..asserted
    };
    let r = build(Some(&new), None, Some(&derived));
    assert_eq!(r.ttl, Some(e_at().millis_since(r.updated_at.unwrap())));
    assert_eq!(r.ttl, Some(e_at().millis_since(t())));

    let r = build(Some(&new), None, None);
    assert_eq!(r.expires_at, None);
}

#[test]
fn asserted_available_at_with_ttb_keeps_the_ttb() {
    let new = AtMetaData {
        ttb: Some(60_000),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        available_at: Some(a_at()),
        ..Default::default()
    };
    let r = build(Some(&new), None, Some(&asserted));
    assert_eq!((r.available_at, r.ttb), (Some(a_at()), Some(60_000)));
}

#[test]
fn derive_ttl_measures_from_asserted_updated_at_and_replaces_a_carried_ttl() {
    let asserted = AssertedTimestamps {
        updated_at: Some(u_at()),
        expires_at: Some(e_at()),
        derive_ttl: true,
        ..Default::default()
    };
    for carried in [None, Some(86_400_000)] {
        let new = AtMetaData {
            ttl: carried,
            ..Default::default()
        };
        let r = build(Some(&new), None, Some(&asserted));
        assert_eq!(r.expires_at, Some(e_at()));
        assert_eq!(
            r.ttl,
            Some(e_at().millis_since(u_at())),
            "carried {carried:?}"
        );
    }
}

#[test]
fn derive_ttb_measures_from_updated_at() {
    let asserted = AssertedTimestamps {
        updated_at: Some(u_at()),
        available_at: Some(a_at()),
        derive_ttb: true,
        ..Default::default()
    };
    let r = build(Some(&AtMetaData::default()), None, Some(&asserted));
    assert_eq!(r.available_at, Some(a_at()));
    assert_eq!(r.ttb, Some(a_at().millis_since(u_at())));
    assert_eq!(r.ttl, None, "deriveTtb alone derives no ttl");
}

#[test]
fn both_derives_make_ttl_span_birth_to_expiry() {
    let asserted = AssertedTimestamps {
        updated_at: Some(u_at()),
        available_at: Some(a_at()),
        expires_at: Some(e_at()),
        derive_ttl: true,
        derive_ttb: true,
        ..Default::default()
    };
    let r = build(Some(&AtMetaData::default()), None, Some(&asserted));
    assert_eq!(r.ttb, Some(a_at().millis_since(u_at())));
    assert_eq!(r.ttl, Some(e_at().millis_since(a_at())));
}

#[test]
fn an_asserted_available_at_without_derive_ttb_is_not_the_base() {
    let asserted = AssertedTimestamps {
        updated_at: Some(u_at()),
        available_at: Some(a_at()),
        expires_at: Some(e_at()),
        derive_ttl: true,
        ..Default::default()
    };
    let r = build(Some(&AtMetaData::default()), None, Some(&asserted));
    assert_eq!(r.ttl, Some(e_at().millis_since(u_at())));
    assert_eq!(r.ttb, None);
}

#[test]
fn a_manufactured_available_at_is_never_the_base() {
    let new = AtMetaData {
        ttb: Some(0),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        updated_at: Some(u_at()),
        expires_at: Some(e_at()),
        derive_ttl: true,
        ..Default::default()
    };
    let r = build(Some(&new), None, Some(&asserted));
    assert_eq!(r.ttl, Some(e_at().millis_since(u_at())));
    assert_eq!(r.ttb, Some(0), "ttb stays as carried");
    assert_eq!(r.available_at, Some(t()), "ttb 0 gives availableAt = now");
}

#[test]
fn non_positive_derived_relatives_are_cleared() {
    let past = ts("2019-01-01T00:00:00Z");
    let new = AtMetaData {
        ttl: Some(86_400_000),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        updated_at: Some(u_at()),
        available_at: Some(past),
        expires_at: Some(past),
        derive_ttl: true,
        derive_ttb: true,
        ..Default::default()
    };
    let r = build(Some(&new), None, Some(&asserted));
    assert_eq!((r.expires_at, r.available_at), (Some(past), Some(past)));
    assert_eq!((r.ttl, r.ttb), (None, None));
}

#[test]
fn derive_flags_without_the_absolute_change_nothing() {
    let new = AtMetaData {
        ttl: Some(1_000),
        ttb: Some(2_000),
        ..Default::default()
    };
    let asserted = AssertedTimestamps {
        updated_at: Some(u_at()),
        derive_ttl: true,
        derive_ttb: true,
        ..Default::default()
    };
    let r = build(Some(&new), None, Some(&asserted));
    assert_eq!((r.ttl, r.ttb), (Some(1_000), Some(2_000)));
    // Expiry and availability are still computed from now, not from the asserted updatedAt.
    assert_eq!(r.expires_at, Some(t().plus_millis(3_000)));
    assert_eq!(r.available_at, Some(t().plus_millis(2_000)));
}

#[test]
fn micros_in_asserted_timestamps_are_truncated_to_millis() {
    for s in [
        "2020-01-02T03:04:05.678901Z",
        "2020-01-02 03:04:05.678999Z",
        "2020-01-02T03:04:05.678Z",
    ] {
        assert_eq!(ts(s), c_at(), "{s}");
    }
}

#[test]
fn has_update_all_fields_looks_at_the_caller_owned_fields_only() {
    assert!(!AtMetaData::default().has_update_all_fields());
    assert!(!stamped_new().has_update_all_fields());
    let m = AtMetaData {
        immutable: Some(false),
        ..Default::default()
    };
    assert!(m.has_update_all_fields());
}

// ---- properties -------------------------------------------------------------------------

fn asserted_strategy() -> BoxedStrategy<AssertedTimestamps> {
    use model_support::any_timestamp;
    let opt_ts = || proptest::option::of(any_timestamp());
    (
        opt_ts(),
        opt_ts(),
        opt_ts(),
        opt_ts(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(c, u, e, a, dl, db)| AssertedTimestamps {
            created_at: c,
            updated_at: u,
            expires_at: e,
            available_at: a,
            derive_ttl: dl,
            derive_ttb: db,
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn builder_is_total_and_stamps_its_fields(
        at_sign in "@[a-z0-9_]{1,12}",
        new in proptest::option::of(model_support::any_metadata()),
        existing in proptest::option::of(model_support::any_metadata()),
        asserted in proptest::option::of(asserted_strategy()),
        now in model_support::any_timestamp(),
    ) {
        let (n0, e0) = (new.clone(), existing.clone());
        let r = build_metadata(&at_sign, new.as_ref(), existing.as_ref(), asserted.as_ref(), now);
        prop_assert_eq!(&new, &n0);
        prop_assert_eq!(&existing, &e0);
        prop_assert_eq!(r.status.as_deref(), Some("active"));
        prop_assert_eq!(r.updated_by.as_deref(), Some(at_sign.as_str()));
        let expected_version = existing
            .as_ref()
            .and_then(|e| e.version)
            .map_or(0, |v| v.saturating_add(1));
        prop_assert_eq!(r.version, Some(expected_version));
        let source = new.as_ref().or(existing.as_ref());
        let expected_creator = source
            .and_then(|m| m.created_by.clone())
            .unwrap_or_else(|| at_sign.clone());
        prop_assert_eq!(r.created_by, Some(expected_creator));
        let a = asserted.unwrap_or_default();
        prop_assert_eq!(r.updated_at, Some(a.updated_at.unwrap_or(now)));
        let expected_created = a
            .created_at
            .or_else(|| existing.as_ref().and_then(|e| e.created_at))
            .unwrap_or(now);
        prop_assert_eq!(r.created_at, Some(expected_created));
        if existing.as_ref().and_then(|e| e.immutable) == Some(true) {
            prop_assert_eq!(r.immutable, Some(true));
        }
        if let Some(e) = a.expires_at {
            prop_assert_eq!(r.expires_at, Some(e));
        }
        if let Some(av) = a.available_at {
            prop_assert_eq!(r.available_at, Some(av));
        }
        // Derived relatives are never non-positive.
        if a.derive_ttl && a.expires_at.is_some() {
            prop_assert!(r.ttl.is_none_or(|ttl| ttl > 0));
        }
        if a.derive_ttb && a.available_at.is_some() {
            prop_assert!(r.ttb.is_none_or(|ttb| ttb > 0));
        }
        // The caller-owned fields come from the chosen source alone.
        let src = source.cloned().unwrap_or_default();
        prop_assert_eq!(&r.data_signature, &src.data_signature);
        prop_assert_eq!(&r.shared_key_enc, &src.shared_key_enc);
        prop_assert_eq!(&r.pub_key_hash, &src.pub_key_hash);
        prop_assert_eq!(&r.app_metadata, &src.app_metadata);
        prop_assert_eq!(r.is_cascade, src.is_cascade);
        prop_assert_eq!(r.is_encrypted, src.is_encrypted);
        prop_assert_eq!(r.ttr, src.ttr);
    }
}
