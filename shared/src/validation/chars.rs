//! The character classes of the text rules, each in two forms kept in one place: a predicate the
//! validation code calls, and a regular-expression character class the OpenAPI patterns are built
//! from (ECMA-262 syntax that Rust's `regex` reads alike; the tests below check that every
//! predicate and its class agree on every character).
//!
//! - whitespace: what `str::trim` removes (Unicode `White_Space`);
//! - control: Unicode `Cc` (C0, DEL, C1); free text allows tab, line feed and carriage return;
//! - bidi control: explicit embeddings, overrides and isolates (not the LRM/RLM/ALM marks);
//! - invisible: the Basic Multilingual Plane part of Unicode's `Default_Ignorable_Code_Point`
//!   (soft hyphen, combining grapheme joiner, Arabic letter mark, zero-width space / non-joiner /
//!   joiner, LRM/RLM, word joiner, bidi controls, variation selectors, BOM, Hangul fillers...).
//!   They are allowed in text (Urdu keyboards type ZWNJ and RLM) but render as nothing, so text
//!   made only of them and whitespace is blank, and search ignores them. The supplementary-plane
//!   ones (shorthand format controls, musical beams, tag characters) are left out: an OpenAPI
//!   pattern cannot name them portably (ECMA-262 needs the `u` flag for `\u{...}`).
//!
//! A character is *visible* when it is none of whitespace, control or invisible: text is blank
//! unless it holds at least one.

/// Regex class bodies (the part between `[` and `]`), as macros so `concat!` can build the
/// patterns below as constants.
macro_rules! whitespace_class {
    () => {
        r"\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}
macro_rules! control_class {
    () => {
        r"\u0000-\u001F\u007F-\u009F"
    };
}
macro_rules! control_except_breaks_class {
    () => {
        r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F"
    };
}
macro_rules! bidi_control_class {
    () => {
        r"\u202A-\u202E\u2066-\u2069"
    };
}
macro_rules! invisible_class {
    () => {
        r"\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8"
    };
}

/// Whitespace, as a regex class.
pub const WHITESPACE: &str = concat!("[", whitespace_class!(), "]");
/// Control characters, as a regex class.
pub const CONTROL: &str = concat!("[", control_class!(), "]");
/// Control characters other than tab, LF and CR (what free text refuses), as a regex class.
pub const CONTROL_EXCEPT_BREAKS: &str = concat!("[", control_except_breaks_class!(), "]");
/// Bidi embeddings, overrides and isolates, as a regex class.
pub const BIDI_CONTROL: &str = concat!("[", bidi_control_class!(), "]");
/// Invisible (default-ignorable) characters, as a regex class.
pub const INVISIBLE: &str = concat!("[", invisible_class!(), "]");
/// A visible character (not whitespace, control or invisible), as a regex class.
pub const VISIBLE: &str = concat!("[^", whitespace_class!(), control_class!(), invisible_class!(), "]");

/// Free text without anchors: no control characters other than tab, LF and CR, and at least one
/// visible character.
macro_rules! content {
    () => {
        concat!(
            "[^",
            control_except_breaks_class!(),
            "]*[^",
            whitespace_class!(),
            control_class!(),
            invisible_class!(),
            "][^",
            control_except_breaks_class!(),
            "]*"
        )
    };
}

/// Free text ([`super::text::check_content`]): no control characters other than tab, LF and CR,
/// and at least one visible character. Kept byte-exact, so nothing is trimmed.
pub const CONTENT_PATTERN: &str = concat!("^", content!(), "$");

/// Optional free text: blank (only whitespace and invisible characters: treated as absent) or
/// [`CONTENT_PATTERN`].
pub const OPTIONAL_CONTENT_PATTERN: &str =
    concat!("^(?:[", whitespace_class!(), invisible_class!(), "]*|", content!(), ")$");

/// The shape `ws* (V | T F* V) (F* T)? ws*` of text trimmed before use: after trimming, its first
/// and last characters are T, every one F, and one V. Given the class bodies of V, T and F.
macro_rules! trimmed {
    ($v:expr, $t:expr, $f:expr) => {
        concat!(
            "^[",
            whitespace_class!(),
            "]*(?:[^",
            $v,
            "]|[^",
            $t,
            "][^",
            $f,
            "]*[^",
            $v,
            "])(?:[^",
            $f,
            "]*[^",
            $t,
            "])?[",
            whitespace_class!(),
            "]*$"
        )
    };
}

/// Free text that is trimmed before use (a search query): after trimming, its first and last
/// characters are neither whitespace nor control, none is a control other than tab, LF and CR,
/// and one is visible. [`trimmed`]'s shape with V visible, T not whitespace nor control, F free.
pub const TRIMMED_TEXT_PATTERN: &str = trimmed!(
    concat!(whitespace_class!(), control_class!(), invisible_class!()),
    concat!(whitespace_class!(), control_class!()),
    control_except_breaks_class!()
);

/// A short identifier before normalisation ([`super::text::normalize_identifier`] with a minimum
/// of one character): after trimming, one line without control or bidi-control characters, with
/// at least one visible character. The same shape as [`TRIMMED_TEXT_PATTERN`], with no control
/// at all inside and no bidi control anywhere.
pub const IDENTIFIER_PATTERN: &str = trimmed!(
    concat!(whitespace_class!(), control_class!(), bidi_control_class!(), invisible_class!()),
    concat!(whitespace_class!(), control_class!(), bidi_control_class!()),
    concat!(control_class!(), bidi_control_class!())
);

/// What `str::trim` removes.
pub fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

/// Unicode `Cc`.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// A control character free text refuses: any but tab, line feed and carriage return.
pub fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Explicit embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069) can make a
/// title display as something other than what it is. Marks (LRM/RLM), which Urdu keyboards
/// insert, stay allowed.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Invisible: the BMP part of `Default_Ignorable_Code_Point` (see the module docs).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'              // soft hyphen
            | '\u{034F}'        // combining grapheme joiner
            | '\u{061C}'        // Arabic letter mark
            | '\u{115F}'..='\u{1160}' // Hangul fillers
            | '\u{17B4}'..='\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors and vowel separator
            | '\u{200B}'..='\u{200F}' // ZWSP, ZWNJ, ZWJ, LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, isolates, deprecated formats
            | '\u{3164}'        // Hangul filler
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}'        // zero-width no-break space (BOM)
            | '\u{FFA0}'        // halfwidth Hangul filler
            | '\u{FFF0}'..='\u{FFF8}' // unassigned, reserved default-ignorable
    )
}

/// Not whitespace, control or invisible.
pub fn is_visible(c: char) -> bool {
    !(is_whitespace(c) || is_control(c) || is_invisible(c))
}

/// Only whitespace and invisible characters (or nothing). Among text that passed the control
/// rules (so its only controls are tab, LF and CR, which are whitespace), the same as holding no
/// visible character.
pub fn is_blank(s: &str) -> bool {
    s.chars().all(|c| is_whitespace(c) || is_invisible(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(c: &str) -> regex::Regex {
        regex::Regex::new(&format!("^{c}$")).unwrap()
    }

    /// Every predicate agrees with its regex class on every Unicode scalar value.
    #[test]
    fn predicates_and_classes_agree_on_every_char() {
        type Rule = (&'static str, fn(char) -> bool);
        let pairs: [Rule; 6] = [
            (WHITESPACE, is_whitespace),
            (CONTROL, is_control),
            (CONTROL_EXCEPT_BREAKS, is_refused_control),
            (BIDI_CONTROL, is_bidi_control),
            (INVISIBLE, is_invisible),
            (VISIBLE, is_visible),
        ];
        let compiled: Vec<_> = pairs.iter().map(|(c, f)| (class(c), *f, *c)).collect();
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = c.encode_utf8(&mut buf);
            for (re, f, name) in &compiled {
                assert_eq!(re.is_match(s), f(c), "{c:?} (U+{:04X}) in {name}", c as u32);
            }
        }
    }

    #[test]
    fn classes_as_documented() {
        for c in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{FEFF}', '\u{2060}'] {
            assert!(is_invisible(c) && !is_visible(c), "{c:?}");
        }
        // Tatweel and Arabic diacritics are visible (they are letters and marks, not format
        // characters); search folds them, validation does not.
        for c in ['a', 'ک', '\u{0640}', '\u{064E}', '۳', '😀'] {
            assert!(is_visible(c), "{c:?}");
        }
        assert!(is_blank(" \u{200C}\t\u{FEFF}\n"));
        assert!(is_blank(""));
        assert!(!is_blank(" \u{200C}ب"));
        assert!(!is_blank("\u{0}"), "a control is not blank: the control rules refuse it");
        assert!(is_bidi_control('\u{202E}') && !is_bidi_control('\u{200F}'));
    }

    #[test]
    fn patterns_compile_in_rust_regex() {
        for p in [CONTENT_PATTERN, OPTIONAL_CONTENT_PATTERN, TRIMMED_TEXT_PATTERN, IDENTIFIER_PATTERN] {
            regex::Regex::new(p).unwrap();
        }
    }
}
