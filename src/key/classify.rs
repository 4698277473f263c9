//! Key type classification (BEHAVIOR 2.4, `enforceNamespace = false`).
//!
//! The rules are compiled once into linear-time `regex` automata. They are written for
//! lower-case keys and match case-sensitively: the Dart patterns are case-insensitive, but
//! the keystore lower-cases every key before classifying it, and `(?i)` in Rust would use
//! Unicode simple case folding, which equates `s` with U+017F and `k` with U+212A.

use std::sync::OnceLock;

use regex::Regex;

use super::KeyType;

/// The members of the "emoji" set E, as the inside of a character class: U+00A9, U+00AE,
/// U+2000–U+3300, U+FE00–U+FE0F, U+1F000–U+1FBFF and the nine IPA/Latin code points that
/// Dart's case-insensitive matching lets in (open point 17).
const E_MEMBERS: &str = r"\x{23F}\x{240}\x{250}-\x{252}\x{26B}\x{271}\x{27D}\x{1D7D}\x{A9}\x{AE}\x{2000}-\x{3300}\x{FE00}-\x{FE0F}\x{1F000}-\x{1FBFF}";

/// The longest owner (or sharedWith) atSign, in Unicode scalar values, without the `@`.
pub const MAX_AT_SIGN_CHARS: usize = 55;

/// Whether `c` belongs to the "emoji" set E of BEHAVIOR 2.4.
pub(crate) fn is_emoji_char(c: char) -> bool {
    matches!(
        c,
        '\u{23F}'
            | '\u{240}'
            | '\u{250}'..='\u{252}'
            | '\u{26B}'
            | '\u{271}'
            | '\u{27D}'
            | '\u{1D7D}'
            | '\u{A9}'
            | '\u{AE}'
            | '\u{2000}'..='\u{3300}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{1F000}'..='\u{1FBFF}'
    )
}

/// Whether `c` is an atSign character (the set A of BEHAVIOR 2.4): `a–z`, `0–9`, `_`, `-`
/// or a member of E.
pub fn is_at_sign_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '_' | '-') || is_emoji_char(c)
}

/// Whether `c` is an entity character (the set N of BEHAVIOR 2.4): `a–z`, `0–9`, `_`, `.`,
/// `-`, `'`, `*`, `"` or a member of E.
pub fn is_entity_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-' | '\'' | '*' | '"') || is_emoji_char(c)
}

/// The compiled classification rules.
struct Rules {
    /// R1–R9 as one unanchored alternation.
    reserved: Regex,
    public: Regex,
    private: Regex,
    /// Captures `sw` (optional) and `owner`.
    self_or_shared: Regex,
    cached_public: Regex,
    cached_shared: Regex,
    local: Regex,
}

fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this module; a failure is a programming error that the
    // unit tests catch, never a consequence of the input.
    Regex::new(pattern).expect("key classification pattern compiles")
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let a = format!(r"[a-z0-9_\-{E_MEMBERS}]");
        let n = format!(r#"[a-z0-9_.'*"\-{E_MEMBERS}]"#);
        let own = format!("{a}{{1,{MAX_AT_SIGN_CHARS}}}");
        let reserved_names = "at_pkam_publickey|at_pkam_privatekey|privatekey|self_encryption_key\
            |at_secret|at_secret_deleted|signing_keypair_generated|commitlogcompactionstats\
            |accesslogcompactionstats|notificationcompactionstats";
        let reserved = [
            format!("privatekey:(?:{reserved_names})$"),
            "^configkey$".to_string(),
            r#"^_[a-z0-9_.'*"\-]+$"#.to_string(),
            format!("private:blocklist@{a}"),
            format!("public:signing_publickey@{a}"),
            format!("@{own}:signing_privatekey@{a}"),
            format!("^@{own}:shared_key@{a}"),
            format!("public:publickey@{a}"),
            format!(r"shared_key\.{own}@{a}"),
        ]
        .iter()
        .map(|r| format!("(?:{r})"))
        .collect::<Vec<_>>()
        .join("|");
        Rules {
            reserved: compile(&reserved),
            public: compile(&format!("^public:{n}+@{own}$")),
            private: compile(&format!("^private:(?:@{own}:)?{n}+@{own}$")),
            self_or_shared: compile(&format!("^(?:@(?P<sw>{own}):)?_*{n}+@(?P<owner>{own})$")),
            cached_public: compile(&format!("^cached:public:{n}+@{own}$")),
            cached_shared: compile(&format!("^cached:@{own}:_*{n}+@{own}$")),
            local: compile(&format!("^local:{n}+@{own}$")),
        }
    })
}

/// Whether the key contains a match of any reserved rule R1–R9 (an unanchored search).
pub(crate) fn is_reserved(key: &str) -> bool {
    rules().reserved.is_match(key)
}

/// Classifies a key that is already lower case (BEHAVIOR 2.4).
///
/// The rules are tried in this order and the first that holds decides: reserved (any of
/// R1–R9 found anywhere in the key), public, private, self/shared, cached public, cached
/// shared, local; anything else is [`KeyType::InvalidKey`]. A `@sw:entity@owner` key is a
/// [`KeyType::SharedKey`] when `sw` differs from `owner` (exact comparison) and a
/// [`KeyType::SelfKey`] otherwise. Owners and recipients are 1 to 55 atSign characters,
/// counted as Unicode scalar values.
///
/// Upper-case letters are not key characters here; classify `key.to_lowercase()`, as the
/// keystore does. Never panics.
pub fn classify(key: &str) -> KeyType {
    let r = rules();
    if r.reserved.is_match(key) {
        return KeyType::ReservedKey;
    }
    if r.public.is_match(key) {
        return KeyType::PublicKey;
    }
    if r.private.is_match(key) {
        return KeyType::PrivateKey;
    }
    if let Some(caps) = r.self_or_shared.captures(key) {
        return match (caps.name("sw"), caps.name("owner")) {
            (Some(sw), Some(owner)) if sw.as_str() != owner.as_str() => KeyType::SharedKey,
            _ => KeyType::SelfKey,
        };
    }
    if r.cached_public.is_match(key) {
        return KeyType::CachedPublicKey;
    }
    if r.cached_shared.is_match(key) {
        return KeyType::CachedSharedKey;
    }
    if r.local.is_match(key) {
        return KeyType::LocalKey;
    }
    KeyType::InvalidKey
}

/// Whether [`classify`] would give anything but [`KeyType::InvalidKey`]. Only match tests:
/// the self/shared distinction needs the captures, which cost several times more, and a
/// write's validation does not need it.
pub(crate) fn is_valid(key: &str) -> bool {
    let r = rules();
    r.reserved.is_match(key)
        || r.public.is_match(key)
        || r.private.is_match(key)
        || r.self_or_shared.is_match(key)
        || r.cached_public.is_match(key)
        || r.cached_shared.is_match(key)
        || r.local.is_match(key)
}

/// A human-readable explanation of why a lower-cased key is an [`KeyType::InvalidKey`],
/// naming the first problem found. Only meaningful for keys that [`classify`] rejects.
pub(crate) fn invalid_reason(key: &str) -> String {
    const RULE: &str = "(BEHAVIOR 2.4)";
    if key.is_empty() {
        return "the key is empty".to_string();
    }
    if key.contains(' ') {
        return format!("a key may not contain a space {RULE}");
    }
    let Some(at) = key.rfind('@') else {
        return format!("the key has no '@owner' and is not a reserved key {RULE}");
    };
    let owner = &key[at + 1..];
    if owner.is_empty() {
        return format!("the owner atSign after the last '@' is empty {RULE}");
    }
    let owner_chars = owner.chars().count();
    if owner_chars > MAX_AT_SIGN_CHARS {
        return format!(
            "the owner atSign '@{owner}' has {owner_chars} characters, more than \
             {MAX_AT_SIGN_CHARS} {RULE}"
        );
    }
    if let Some(bad) = owner.chars().find(|c| !is_at_sign_char(*c)) {
        return format!(
            "the owner atSign '@{owner}' contains {bad:?} (U+{:04X}), which is not an atSign \
             character (a-z, 0-9, '_', '-' or an allowed emoji) {RULE}",
            u32::from(bad)
        );
    }
    let head = &key[..at];
    if let Some(bad) = head
        .chars()
        .find(|c| !is_entity_char(*c) && *c != ':' && *c != '@')
    {
        return format!(
            "the key contains {bad:?} (U+{:04X}), which is not an entity character (a-z, 0-9, \
             _ . - ' * \" or an allowed emoji) {RULE}",
            u32::from(bad)
        );
    }
    format!(
        "the key matches none of the forms entity@owner, @recipient:entity@owner, \
         public:entity@owner, private:entity@owner, cached:public:entity@owner, \
         cached:@recipient:entity@owner, local:entity@owner or a reserved key {RULE}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_patterns_compile() {
        let _ = rules();
    }

    #[test]
    fn char_sets_agree_with_the_regex_classes() {
        // Every character accepted by the helper functions is accepted by the compiled
        // classes and vice versa (checked through one-character keys).
        for c in ('\0'..='\u{2FFFF}')
            .step_by(7)
            .chain(['\u{250}', '\u{1D7D}', 'z', '-'])
        {
            let self_key = format!("{c}@alice");
            let owner_key = format!("x@{c}");
            assert_eq!(
                classify(&self_key) == KeyType::SelfKey,
                is_entity_char(c),
                "entity {c:?}"
            );
            assert_eq!(
                classify(&owner_key) == KeyType::SelfKey,
                is_at_sign_char(c),
                "owner {c:?}"
            );
        }
    }

    #[test]
    fn reasons_name_the_problem() {
        assert!(invalid_reason("my phone@alice").contains("space"));
        assert!(invalid_reason("hello123").contains("no '@owner'"));
        assert!(invalid_reason("hello@").contains("empty"));
        assert!(invalid_reason("phone@alice.com").contains("'.'"));
        assert!(invalid_reason(&format!("x@{}", "a".repeat(56))).contains("56 characters"));
        assert!(invalid_reason("é@alice").contains("U+00E9"));
        assert!(invalid_reason("cached:phone@bob").contains("matches none"));
    }
}
