//! `KeyPattern`, the key filter of `scan_keys` (API-5.0 2.2).

use std::fmt;

use super::parse::ParsedAtKey;

/// A filter on the parts of an atKey: four independent optional fields, `None` meaning
/// "any"; the fields that are set must all hold (API-5.0 2.2).
///
/// | field | holds when |
/// |---|---|
/// | `shared_by` | the key's owner equals it, ignoring case and a leading `@` on either side (`@ALICE` and `alice` both match `…@alice`) |
/// | `shared_with` | the key's recipient equals it by the same rule; keys without a recipient (self, `public:`, `cached:public:`, `local:`) never match |
/// | `namespace` | the key's namespace (text after the last `.` of the entity) equals it exactly |
/// | `id_prefix` | the key's id (entity before the last `.`) starts with it; a plain, case-sensitive prefix |
///
/// The key is split with [`ParsedAtKey::parse`], quirks included: `private:x@alice` has the
/// recipient `private` and `privatekey:x@alice` the recipient `privatekey`, so
/// `shared_with: Some("private")` matches the former; `cached:@bob:x@alice` has the recipient
/// `@bob`. A key that does not parse (no `@`, a space, …) matches only the unrestricted
/// pattern; matching never fails.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPattern {
    /// The owner atSign (`@alice` or `alice`, any case).
    pub shared_by: Option<String>,
    /// The recipient atSign (`@bob` or `bob`, any case).
    pub shared_with: Option<String>,
    /// The namespace, compared exactly (stored keys are lower case).
    pub namespace: Option<String>,
    /// A plain, case-sensitive prefix of the id.
    pub id_prefix: Option<String>,
}

/// Compares two atSigns case-insensitively, ignoring one leading `@` on either side.
fn same_at_sign(actual: &str, wanted: &str) -> bool {
    let strip = |s: &str| s.strip_prefix('@').unwrap_or(s).to_lowercase();
    strip(actual) == strip(wanted)
}

impl KeyPattern {
    /// Whether all four fields are `None`; such a pattern matches every key.
    pub fn is_unrestricted(&self) -> bool {
        self.shared_by.is_none()
            && self.shared_with.is_none()
            && self.namespace.is_none()
            && self.id_prefix.is_none()
    }

    /// Whether `canonical_key` satisfies every field that is set (see the type's
    /// documentation). Never panics.
    pub fn matches(&self, canonical_key: &str) -> bool {
        if self.is_unrestricted() {
            return true;
        }
        let Ok(parsed) = ParsedAtKey::parse(canonical_key) else {
            return false;
        };
        let field_holds = |wanted: &Option<String>, actual: &Option<String>| match wanted {
            None => true,
            Some(wanted) => actual
                .as_deref()
                .is_some_and(|actual| same_at_sign(actual, wanted)),
        };
        field_holds(&self.shared_by, &parsed.shared_by)
            && field_holds(&self.shared_with, &parsed.shared_with)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| parsed.namespace.as_deref() == Some(ns))
            && self
                .id_prefix
                .as_deref()
                .is_none_or(|prefix| parsed.id.starts_with(prefix))
    }
}

impl fmt::Display for KeyPattern {
    /// `KeyPattern(sharedBy: @alice, sharedWith: null, namespace: wavi, idPrefix: null)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".to_string());
        write!(
            f,
            "KeyPattern(sharedBy: {}, sharedWith: {}, namespace: {}, idPrefix: {})",
            show(&self.shared_by),
            show(&self.shared_with),
            show(&self.namespace),
            show(&self.id_prefix)
        )
    }
}
