//! The modified UTF-7 used by the Dart keystore for its Hive keys (BEHAVIOR 2.2).
//!
//! The port does not store UTF-7; it only needs the encoded length for the key length rule
//! (BEHAVIOR 2.3, open point 32), so that a key the Rust store accepts is accepted by a
//! Hive-backed peer too. The encoder and decoder are provided in full so the measurement can
//! be checked by round trips.
//!
//! Encoding works on UTF-16 code units:
//!
//! * TAB, LF, CR and every unit in 32..=125 except `+` and `\` are copied as they are;
//! * `+` becomes `+-`;
//! * every maximal run of other units becomes `+`, the standard base64 of the run's UTF-16
//!   big-endian bytes without `=` padding, then `-`.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

/// Whether a UTF-16 code unit is copied to the output unchanged.
fn is_direct(unit: u16) -> bool {
    matches!(unit, 9 | 10 | 13) || ((32..=125).contains(&unit) && unit != 43 && unit != 92)
}

/// Length of the unpadded base64 text of `bytes` bytes.
fn unpadded_base64_len(bytes: usize) -> usize {
    (bytes / 3) * 4
        + match bytes % 3 {
            0 => 0,
            1 => 2,
            _ => 3,
        }
}

/// Encodes `s` the way the Dart keystore encodes Hive keys (BEHAVIOR 2.2).
///
/// `utf7_encode("phone@bob💙") == "phone@bob+2D3cmQ-"`, `utf7_encode("a+b") == "a+-b"`.
pub fn utf7_encode(s: &str) -> String {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut out = String::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        let unit = units[i];
        if is_direct(unit) {
            // Direct units are ASCII, so the cast is exact.
            out.push(char::from(unit as u8));
            i += 1;
        } else if unit == u16::from(b'+') {
            out.push_str("+-");
            i += 1;
        } else {
            let start = i;
            while i < units.len() && !is_direct(units[i]) && units[i] != u16::from(b'+') {
                i += 1;
            }
            let bytes: Vec<u8> = units[start..i]
                .iter()
                .flat_map(|u| u.to_be_bytes())
                .collect();
            out.push('+');
            out.push_str(&STANDARD_NO_PAD.encode(bytes));
            out.push('-');
        }
    }
    out
}

/// The length of [`utf7_encode`]`(s)` (all of its characters are ASCII), computed without
/// building the encoded string. This is the measure of the key length rule (BEHAVIOR 2.3).
pub fn utf7_len(s: &str) -> usize {
    let mut len = 0;
    let mut run = 0usize;
    for unit in s.encode_utf16() {
        if is_direct(unit) || unit == u16::from(b'+') {
            if run > 0 {
                len += 2 + unpadded_base64_len(run * 2);
                run = 0;
            }
            len += if is_direct(unit) { 1 } else { 2 };
        } else {
            run += 1;
        }
    }
    if run > 0 {
        len += 2 + unpadded_base64_len(run * 2);
    }
    len
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Decodes one shift sequence's base64 text; `None` when it is not valid base64 of a whole
/// number of UTF-16 units.
fn decode_run(b64: &str) -> Option<String> {
    let bytes = STANDARD_NO_PAD.decode(b64).ok()?;
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    Some(String::from_utf16_lossy(&units))
}

/// Decodes the modified UTF-7 of [`utf7_encode`]: every `+` followed by base64 characters
/// (and an optional closing `-`) is replaced by the UTF-16BE text the base64 encodes; `+-`
/// (an empty run) is a literal `+`.
///
/// `utf7_decode(&utf7_encode(s)) == s` for every string. The function never panics: a shift
/// sequence that is not valid base64 of whole UTF-16 units is left unchanged, and unpaired
/// surrogates decode to U+FFFD (Dart would throw on both; such text never comes out of the
/// encoder).
pub fn utf7_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    // `copied` is the start of the text not yet written to `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'+' {
            i += 1;
            continue;
        }
        // A shift sequence: `+`, base64 characters (greedy, `+` included), optional `-`.
        let start = i;
        let mut end = i + 1;
        while end < bytes.len() && is_base64_char(bytes[end]) {
            end += 1;
        }
        let b64 = &s[start + 1..end];
        let after = if end < bytes.len() && bytes[end] == b'-' {
            end + 1
        } else {
            end
        };
        let replacement = if b64.is_empty() {
            Some("+".to_string())
        } else {
            decode_run(b64)
        };
        if let Some(text) = replacement {
            out.push_str(&s[copied..start]);
            out.push_str(&text);
            copied = after;
        }
        i = after;
    }
    out.push_str(&s[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lengths() {
        assert_eq!(unpadded_base64_len(0), 0);
        assert_eq!(unpadded_base64_len(1), 2);
        assert_eq!(unpadded_base64_len(2), 3);
        assert_eq!(unpadded_base64_len(3), 4);
        assert_eq!(unpadded_base64_len(4), 6);
    }

    #[test]
    fn len_agrees_with_encoder_on_mixed_runs() {
        for s in ["", "+", "é+é", "~\\~", "a\u{7}b", "x💙+💙y", "\t\r\n"] {
            assert_eq!(utf7_len(s), utf7_encode(s).len(), "{s:?}");
        }
    }

    #[test]
    fn invalid_shift_sequences_stay() {
        // One base64 character is never valid; three give an odd byte count.
        assert_eq!(utf7_decode("+A-x"), "+A-x");
        assert_eq!(utf7_decode("+AA-"), "+AA-");
        // A lone high surrogate becomes U+FFFD.
        assert_eq!(utf7_decode("+2D0-"), "\u{FFFD}");
    }
}
