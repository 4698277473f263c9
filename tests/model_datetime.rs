//! Rendering and parsing of instants (BEHAVIOR 1.4).

mod model_support;

use at_persistence_secondary_server::model::Timestamp;
use at_persistence_secondary_server::PersistenceError;
use proptest::prelude::*;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn parse(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

const T_MS: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

#[test]
fn renders_utc_with_a_space_and_three_fraction_digits() {
    assert_eq!(ts(0).to_string(), "1970-01-01 00:00:00.000Z");
    assert_eq!(ts(T_MS).to_string(), "2024-01-01 00:00:00.000Z");
    assert_eq!(ts(T_MS + 60_000).to_string(), "2024-01-01 00:01:00.000Z");
    assert_eq!(ts(T_MS + 123).to_string(), "2024-01-01 00:00:00.123Z");
    assert_eq!(
        ts(1_000_000_000_007).to_string(),
        "2001-09-09 01:46:40.007Z"
    );
}

#[test]
fn renders_negative_instants() {
    assert_eq!(ts(-1).to_string(), "1969-12-31 23:59:59.999Z");
    assert_eq!(ts(-1_000).to_string(), "1969-12-31 23:59:59.000Z");
    assert_eq!(ts(-86_400_000).to_string(), "1969-12-31 00:00:00.000Z");
    assert_eq!(ts(-86_400_001).to_string(), "1969-12-30 23:59:59.999Z");
    // Gregorian reform date, proleptically.
    assert_eq!(
        ts(-12_219_292_800_000).to_string(),
        "1582-10-15 00:00:00.000Z"
    );
}

#[test]
fn renders_leap_days() {
    assert_eq!(
        parse("2024-02-28T00:00:00Z")
            .plus_millis(86_400_000)
            .to_string(),
        "2024-02-29 00:00:00.000Z"
    );
    assert_eq!(
        parse("2023-02-28T00:00:00Z")
            .plus_millis(86_400_000)
            .to_string(),
        "2023-03-01 00:00:00.000Z"
    );
    assert_eq!(
        parse("1900-02-28T00:00:00Z")
            .plus_millis(86_400_000)
            .to_string(),
        "1900-03-01 00:00:00.000Z"
    );
    assert_eq!(
        parse("2000-02-28T00:00:00Z")
            .plus_millis(86_400_000)
            .to_string(),
        "2000-02-29 00:00:00.000Z"
    );
    assert_eq!(
        parse("2024-12-31T00:00:00Z").as_millis() - parse("2024-01-01T00:00:00Z").as_millis(),
        365 * 86_400_000
    );
}

#[test]
fn renders_the_ends_of_the_four_digit_years() {
    assert_eq!(
        ts(-62_167_219_200_000).to_string(),
        "0000-01-01 00:00:00.000Z"
    );
    assert_eq!(
        ts(253_402_300_799_999).to_string(),
        "9999-12-31 23:59:59.999Z"
    );
    // Outside 0..=9999 as Dart's DateTime.toString() does.
    assert_eq!(
        ts(-62_167_219_200_001).to_string(),
        "-0001-12-31 23:59:59.999Z"
    );
    assert_eq!(
        ts(253_402_300_800_000).to_string(),
        "10000-01-01 00:00:00.000Z"
    );
    // Any i64 renders.
    assert!(!ts(i64::MIN).to_string().is_empty());
    assert!(!ts(i64::MAX).to_string().is_empty());
}

#[test]
fn parses_the_rendered_form_and_the_iso_form() {
    assert_eq!(parse("2024-01-01 00:00:00.000Z"), ts(T_MS));
    assert_eq!(parse("2024-01-01T00:00:00.000Z"), ts(T_MS));
    assert_eq!(parse("2024-01-01T00:00:00Z"), ts(T_MS));
    assert_eq!(parse("2024-01-01T00:00:00z"), ts(T_MS));
    assert_eq!(parse("2024-01-01 00:00:00.000 Z"), ts(T_MS));
    assert_eq!(parse("+2024-01-01T00:00:00Z"), ts(T_MS));
}

#[test]
fn parses_offsets() {
    assert_eq!(parse("2024-01-01T05:30:00.000+05:30"), ts(T_MS));
    assert_eq!(parse("2024-01-01T05:30:00+0530"), ts(T_MS));
    assert_eq!(parse("2023-12-31T22:30:00-01:30"), ts(T_MS));
    assert_eq!(parse("2023-12-31T22:30:00-0130"), ts(T_MS));
    assert_eq!(parse("2024-01-01T02:00:00+02"), ts(T_MS));
    assert_eq!(parse("2024-01-01T00:00:00+00:00"), ts(T_MS));
    assert_eq!(parse("2024-01-01T00:00:00 +00:00"), ts(T_MS));
}

#[test]
fn zone_less_strings_are_utc() {
    assert_eq!(parse("2024-01-01T00:00:00"), ts(T_MS));
    assert_eq!(parse("2024-01-01 00:00:00.000"), ts(T_MS));
    assert_eq!(parse("2024-01-01"), ts(T_MS));
}

#[test]
fn fractions_of_any_length_are_truncated_to_millis() {
    assert_eq!(parse("2024-01-01T00:00:00.5Z"), ts(T_MS + 500));
    assert_eq!(parse("2024-01-01T00:00:00.12Z"), ts(T_MS + 120));
    assert_eq!(parse("2024-01-01T00:00:00.123456Z"), ts(T_MS + 123));
    assert_eq!(parse("2024-01-01T00:00:00.999999Z"), ts(T_MS + 999));
    assert_eq!(parse("2024-01-01T00:00:00.123456789Z"), ts(T_MS + 123));
    assert_eq!(parse("2024-01-01T00:00:00,250Z"), ts(T_MS + 250));
    // Before the epoch the fraction still counts forward from the second.
    assert_eq!(parse("1969-12-31T23:59:59.999999Z"), ts(-1));
    assert_eq!(parse("1969-12-31 23:59:59.000Z"), ts(-1_000));
}

#[test]
fn parses_compact_and_partial_times() {
    assert_eq!(parse("20240101T000000Z"), ts(T_MS));
    assert_eq!(parse("20240101"), ts(T_MS));
    assert_eq!(parse("2024-01-01T10:30Z"), ts(T_MS + 37_800_000));
    assert_eq!(parse("2024-01-01T10Z"), ts(T_MS + 36_000_000));
    assert_eq!(parse("2024-01-01T1030"), ts(T_MS + 37_800_000));
}

#[test]
fn parses_leap_days_and_refuses_impossible_dates() {
    assert_eq!(
        parse("2024-02-29T00:00:00Z").to_string(),
        "2024-02-29 00:00:00.000Z"
    );
    assert_eq!(
        parse("2000-02-29T00:00:00Z").to_string(),
        "2000-02-29 00:00:00.000Z"
    );
    for bad in [
        "2023-02-29",
        "1900-02-29",
        "2024-04-31",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
    ] {
        assert!(Timestamp::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn parses_years_outside_four_digits() {
    assert_eq!(parse("-0001-12-31 23:59:59.999Z"), ts(-62_167_219_200_001));
    assert_eq!(parse("10000-01-01 00:00:00.000Z"), ts(253_402_300_800_000));
    assert_eq!(parse("+275760-09-13T00:00:00Z"), ts(8_640_000_000_000_000));
    assert_eq!(parse("-271821-04-20T00:00:00Z"), ts(-8_640_000_000_000_000));
}

#[test]
fn bad_strings_are_typed_errors() {
    for bad in [
        "",
        " ",
        "null",
        "yesterday",
        "2024",
        "2024-01",
        "2024-1-01",
        " 2024-01-01",
        "2024-01-01 ",
        "2024-01-01X00:00:00Z",
        "2024-01-01T",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00ZZ",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T23:59:60Z",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+05:",
        "2024-01-01T00:00:00+5",
        "1234567-01-01",
        "２０２４-01-01",
        "2024-01-01T00:00:00.000Zé",
    ] {
        match Timestamp::parse(bad) {
            Err(PersistenceError::InvalidJson { field, reason }) => {
                assert_eq!(field, "<date>");
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
}

#[test]
fn ordering_of_rendered_four_digit_years_matches_ordering_of_instants() {
    let a = ts(-1).to_string();
    let b = ts(0).to_string();
    let c = ts(T_MS).to_string();
    assert!(a < b && b < c);
}

fn shape() -> &'static regex::Regex {
    static SHAPE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    SHAPE.get_or_init(|| {
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$").unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn display_then_parse_is_the_identity(t in model_support::json_timestamp()) {
        prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn iso_form_with_micros_parses_to_the_same_millis(t in model_support::json_timestamp(), micros in 0u32..1000) {
        let text = t.to_string();
        // "... HH:MM:SS.mmmZ" -> "...THH:MM:SS.mmmuuuZ"
        let iso = format!("{}{:03}Z", text[..text.len() - 1].replacen(' ', "T", 1), micros);
        prop_assert_eq!(Timestamp::parse(&iso).unwrap(), t);
    }

    #[test]
    fn four_digit_years_have_the_fixed_shape(ms in -62_167_219_200_000i64..=253_402_300_799_999) {
        let s = ts(ms).to_string();
        prop_assert!(shape().is_match(&s), "{}", s);
    }

    #[test]
    fn rendering_any_i64_never_panics(ms in any::<i64>()) {
        let _ = ts(ms).to_string();
    }

    #[test]
    fn parsing_any_string_never_panics(s in any::<String>()) {
        let _ = Timestamp::parse(&s);
    }

    #[test]
    fn parsing_date_like_strings_never_panics(s in "[+-]?[0-9]{0,7}-?[0-9]{0,3}-?[0-9]{0,3}[ T]?[0-9:.,]{0,14}[zZ+ -]?[0-9:]{0,6}") {
        let _ = Timestamp::parse(&s);
    }
}
