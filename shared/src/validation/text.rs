//! String rules. Two kinds of text reach the API:
//! - short identifiers (titles, names): NFC-normalised, trimmed, single line, no control or
//!   bidi-override characters, so two spellings of one name compare equal and none hides text;
//! - free text (message content): kept byte-exact. A chat about code legitimately contains
//!   `<script>`, so nothing is escaped, stripped or normalised; only control characters other
//!   than tab, newline and carriage return are refused.
//!
//! Either must hold a visible character: text of only whitespace and invisible characters (ZWSP,
//! ZWNJ, BOM...) is blank. The character classes, and the OpenAPI patterns built from them, are
//! in [`super::chars`].
//!
//! Rust strings are UTF-8 by construction; the extractors reject bodies, queries and paths that
//! are not valid UTF-8 before these rules run.

use unicode_normalization::UnicodeNormalization;

use crate::validation::Report;
use crate::validation::chars::{is_bidi_control, is_blank, is_refused_control};

/// Why a string broke a rule; its `Display` is the client-facing detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must be at least {0} characters")]
    TooShort(usize),
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("must not contain line breaks or tabs")]
    LineBreak,
    #[error("must not contain bidirectional override characters")]
    BidiOverride,
}

/// Free text: control characters other than `\t`, `\n`, `\r` are refused (C0, DEL, C1).
pub fn check_free_text(s: &str) -> Result<(), TextError> {
    if s.chars().any(is_refused_control) {
        return Err(TextError::ControlCharacter);
    }
    Ok(())
}

/// A short identifier, normalised: NFC, surrounding whitespace trimmed, then checked.
/// Lengths count Unicode scalar values after normalisation.
pub fn normalize_identifier(s: &str, min_chars: usize, max_chars: usize) -> Result<String, TextError> {
    let nfc: String = s.nfc().collect();
    let trimmed = nfc.trim();
    if let Some(c) = trimmed.chars().find(|c| c.is_control()) {
        return Err(if matches!(c, '\t' | '\n' | '\r') { TextError::LineBreak } else { TextError::ControlCharacter });
    }
    if trimmed.chars().any(is_bidi_control) {
        return Err(TextError::BidiOverride);
    }
    let n = trimmed.chars().count();
    if min_chars > 0 && is_blank(trimmed) {
        return Err(TextError::Empty);
    }
    if n < min_chars {
        return Err(TextError::TooShort(min_chars));
    }
    if n > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    Ok(trimmed.to_string())
}

/// Free text with bounds: not blank (at least one visible character), at most `max_chars`
/// characters, free-text character rules. The value is never changed.
pub fn check_content(s: &str, max_chars: usize) -> Result<(), TextError> {
    check_free_text(s)?;
    if is_blank(s) {
        return Err(TextError::Empty);
    }
    if s.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    Ok(())
}

/// Report helper: normalises `value` in place or records why it failed at `field`.
pub fn identifier(report: &mut Report, field: &str, value: &mut String, min_chars: usize, max_chars: usize) {
    match normalize_identifier(value, min_chars, max_chars) {
        Ok(v) => *value = v,
        Err(e) => report.fail_at(field, e.to_string()),
    }
}

/// Report helper for an optional short identifier.
pub fn optional_identifier(report: &mut Report, field: &str, value: &mut Option<String>, max_chars: usize) {
    if let Some(v) = value {
        identifier(report, field, v, 1, max_chars);
    }
}

/// Report helper: checks free text at `field` without touching it.
pub fn content(report: &mut Report, field: &str, value: &str, max_chars: usize) {
    if let Err(e) = check_content(value, max_chars) {
        report.fail_at(field, e.to_string());
    }
}

/// Report helper: `min <= value <= max`.
pub fn range<T: PartialOrd + std::fmt::Display>(report: &mut Report, field: &str, value: T, min: T, max: T) {
    if value < min || value > max {
        report.fail_at(field, format!("must be between {min} and {max}"));
    }
}

/// Report helper: a list holds at most `max` items (and at least `min`).
pub fn count(report: &mut Report, field: &str, len: usize, min: usize, max: usize) {
    if len < min {
        report.fail_at(field, format!("must hold at least {min} item(s)"));
    } else if len > max {
        report.fail_at(field, format!("must hold at most {max} item(s)"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identifiers_are_nfc_and_trimmed() {
        // "e" + combining acute (NFD) becomes the single precomposed character.
        assert_eq!(normalize_identifier("  Cafe\u{301} ", 1, 10).unwrap(), "Caf\u{e9}");
        assert_eq!(normalize_identifier("اردو گفتگو", 1, 20).unwrap(), "اردو گفتگو");
        assert_eq!(normalize_identifier("RLM\u{200F}ok", 1, 20).unwrap(), "RLM\u{200F}ok");
    }

    #[test]
    fn identifiers_refuse_controls_breaks_and_overrides() {
        assert_eq!(normalize_identifier("a\u{0}b", 1, 10), Err(TextError::ControlCharacter));
        assert_eq!(normalize_identifier("a\u{85}b", 1, 10), Err(TextError::ControlCharacter));
        assert_eq!(normalize_identifier("a\nb", 1, 10), Err(TextError::LineBreak));
        assert_eq!(normalize_identifier("a\u{202E}fdp.exe", 1, 20), Err(TextError::BidiOverride));
        assert_eq!(normalize_identifier("   ", 1, 10), Err(TextError::Empty));
        assert_eq!(normalize_identifier("abcdef", 1, 5), Err(TextError::TooLong(5)));
        assert_eq!(normalize_identifier("a", 2, 5), Err(TextError::TooShort(2)));
        // Only invisible characters (RLM, ZWNJ, BOM): blank.
        assert_eq!(normalize_identifier(" \u{200F}\u{200C}\u{FEFF} ", 1, 10), Err(TextError::Empty));
    }

    #[test]
    fn content_is_byte_exact_and_allows_code() {
        let code = "<script>alert('x')</script>\r\n\tif a && b { x = \"<b>\" }\u{301}";
        assert_eq!(check_content(code, 1000), Ok(()));
        assert_eq!(check_content("a\u{7}b", 1000), Err(TextError::ControlCharacter));
        assert_eq!(check_content("a\u{7f}b", 1000), Err(TextError::ControlCharacter));
        assert_eq!(check_content("a\u{9b}b", 1000), Err(TextError::ControlCharacter));
        assert_eq!(check_content(" \n\t", 1000), Err(TextError::Empty));
        assert_eq!(check_content("\u{200B}\u{200C} \u{200D}\u{FEFF}", 1000), Err(TextError::Empty));
        assert_eq!(check_content("\u{200C}ب", 1000), Ok(()));
        assert_eq!(check_content("ab", 1), Err(TextError::TooLong(1)));
    }

    proptest! {
        #[test]
        fn no_string_panics_the_text_rules(s in any::<String>(), min in 0usize..4, max in 0usize..64) {
            let _ = normalize_identifier(&s, min, max);
            let _ = check_content(&s, max);
            if let Ok(v) = normalize_identifier(&s, min, max) {
                // Normalising is idempotent: a stored title validates to itself.
                prop_assert_eq!(normalize_identifier(&v, min, max), Ok(v.clone()));
                prop_assert!(!v.chars().any(char::is_control));
            }
        }
    }
}
