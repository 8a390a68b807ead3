//! Search folding: one normalisation for stored text and queries, so Urdu matches however it was
//! typed (Urdu, Arabic or Persian keyboard; with or without diacritics, joiners, Urdu or ASCII
//! digits) and Roman Urdu matches across its common spellings. A query matches when its folded
//! form is a substring of the folded text.
//!
//! Each character of the text goes through these steps, in order (docs/chat.md, "Search"):
//! 1. Compatibility decomposition (NFKD, so the text is matched by its NFKC equivalence class):
//!    presentation forms and ligatures (ﻻ, ﷲ, ﬁ) become their letters, fullwidth and styled
//!    letters and digits become plain ones, precomposed letters split into letter + marks.
//! 2. Lowercase (`char::to_lowercase`, plus the two full case foldings that matter here: ß → ss,
//!    final ς → σ), then decomposed again (İ → i + dot, dropped at step 3).
//! 3. Dropped: every combining mark with a non-zero canonical combining class (Latin accents,
//!    Arabic harakat: zabar, zer, pesh, tanwin, shadda, jazm, madda, hamza above/below, khari zabar
//!    U+0670, Quranic marks, honorifics U+0610..U+061A); tatweel U+0640; the Quranic small waw and
//!    yeh U+06E5/U+06E6; high hamza U+0674; and every invisible character of the shared validation
//!    rules (`baatcheet_shared::validation::chars::is_invisible`: ZWSP, ZWNJ, ZWJ, LRM, RLM, ALM,
//!    word joiner, BOM, variation selectors...).
//! 4. The table in [`fold_letter`]: Arabic letter variants to their Urdu letters, Arabic and
//!    Urdu punctuation to ASCII, decimal digits of every script to ASCII ([`ascii_digit`]); and
//!    ے followed by hamza above (ۓ) → یے, the way ئے folds.
//! 5. Whitespace of any kind is one space, and a run of it one space.
//! 6. Roman Urdu (ASCII letters only): a run of one letter counts as one (salaam = salam,
//!    shukriyaa = shukriya, accha = acha), then `ai` or `ei` followed by a consonant (a letter
//!    other than a e i o u) reads as `e`: kaise = kese, hain = hein = hen, main = mein = men.
//!    Not at the end of a word or before a vowel: chai, bhai and hai stay, so `chai` does not
//!    find cheeni nor `bhai` bhejo. The price of that context: a query that stops inside such a
//!    vowel (`ka` or `kai` for kaise) does not find it; `kais` does.
//!
//! Not folded (distinct letters or sounds, so folding them would find other words): ے yeh barree
//! and ی (kaise/kaisi), the retroflex ٹ ڈ ڑ and ت د ر, ء standalone hamza, a letter added or left
//! out (لیۓ/لیے), other Roman Urdu spellings (word-final ai/e, ay/e, u/oo, kh/k, w/v, hyphens and
//! spaces inside words).
//!
//! Each folded character remembers the original characters it came from (a byte range in the
//! original text; dropped characters join the character before them), so a match in the folded
//! text is located in the original text, which is what snippets show.

use baatcheet_shared::validation::chars::is_invisible;
use std::ops::Range;
use unicode_normalization::char::{canonical_combining_class, decompose_compatible};

/// Folded text and where each of its bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    pub text: String,
    /// For each byte of `text`: the byte range in the original text it came from.
    spans: Vec<(usize, usize)>,
}

impl Folded {
    /// The byte range in the original text of the first match of `needle` (already folded and
    /// not empty); it starts and ends on character boundaries of the original text.
    pub fn find(&self, needle: &str) -> Option<Range<usize>> {
        if needle.is_empty() {
            return None;
        }
        let at = self.text.find(needle)?;
        Some(self.spans[at].0..self.spans[at + needle.len() - 1].1)
    }
}

/// `text` folded for matching.
pub fn fold(text: &str) -> String {
    let mut out = Out { text: String::with_capacity(text.len()), spans: None, prev_latin: None, yeh_barree: false };
    fold_into(text, &mut out);
    out.text
}

/// A query folded: [`fold`], without the space a leading or trailing invisible character may leave.
pub fn fold_query(query: &str) -> String {
    fold(query).trim_matches(' ').to_string()
}

/// `text` folded, with the map back to it.
pub fn fold_mapped(text: &str) -> Folded {
    let mut out =
        Out { text: String::with_capacity(text.len()), spans: Some(Vec::new()), prev_latin: None, yeh_barree: false };
    fold_into(text, &mut out);
    let spans = out.spans.unwrap_or_default();
    Folded { text: out.text, spans }
}

/// Folded output under construction.
struct Out {
    text: String,
    /// Per byte of `text`, when a map is wanted.
    spans: Option<Vec<(usize, usize)>>,
    /// The last ASCII letter read from the input (after lowercasing) while the output still ends
    /// with what it produced: a repeat of it is dropped (step 6).
    prev_latin: Option<char>,
    /// The output ends with ے, followed in the input by nothing but combining marks: a hamza
    /// above here would have composed with it (ۓ).
    yeh_barree: bool,
}

impl Out {
    fn last(&self) -> Option<char> {
        self.text.chars().next_back()
    }

    fn push(&mut self, c: char, span: (usize, usize)) {
        self.yeh_barree = c == '\u{06D2}';
        self.text.push(c);
        if let Some(spans) = &mut self.spans {
            spans.resize(self.text.len(), span);
        }
    }

    /// The last folded character also covers original bytes up to `end`.
    fn extend_last(&mut self, end: usize) {
        let Some(last) = self.last() else { return };
        if let Some(spans) = &mut self.spans {
            let from = self.text.len() - last.len_utf8();
            for s in &mut spans[from..] {
                s.1 = s.1.max(end);
            }
        }
    }

    fn pop(&mut self) -> Option<(char, (usize, usize))> {
        let c = self.text.pop()?;
        let span = self.spans.as_mut().map_or((0, 0), |spans| {
            let span = spans[self.text.len()];
            spans.truncate(self.text.len());
            span
        });
        Some((c, span))
    }

    /// A character that is not an ASCII letter (steps 4-5).
    fn other(&mut self, c: char, span: (usize, usize)) {
        self.prev_latin = None;
        if c == ' ' && self.last() == Some(' ') {
            self.extend_last(span.1);
        } else {
            self.push(c, span);
        }
    }

    /// An ASCII lowercase letter (step 6).
    fn latin(&mut self, c: char, span: (usize, usize)) {
        if self.prev_latin == Some(c) {
            self.extend_last(span.1);
            return;
        }
        self.prev_latin = Some(c);
        if !matches!(c, 'a' | 'e' | 'i' | 'o' | 'u') && (self.text.ends_with("ai") || self.text.ends_with("ei")) {
            // ai / ei before a consonant: e, covering both letters.
            let (_, (_, end)) = self.pop().unwrap_or_default();
            let (_, (start, _)) = self.pop().unwrap_or_default();
            self.push_latin('e', (start, end));
        }
        self.push_latin(c, span);
    }

    /// A Roman Urdu letter, merged with the one before when they are the same.
    fn push_latin(&mut self, c: char, span: (usize, usize)) {
        if self.last() == Some(c) {
            self.extend_last(span.1);
        } else {
            self.push(c, span);
        }
    }
}

fn fold_into(text: &str, out: &mut Out) {
    let mut parts: Vec<char> = Vec::with_capacity(8);
    for (at, c) in text.char_indices() {
        let span = (at, at + c.len_utf8());
        // ASCII is its own decomposition: skip the tables for the common case.
        if c.is_ascii() {
            fold_char(c.to_ascii_lowercase(), span, out);
            continue;
        }
        parts.clear();
        decompose_compatible(c, |d| {
            for l in d.to_lowercase() {
                decompose_compatible(l, |x| parts.push(x));
            }
        });
        for &x in &parts {
            fold_char(x, span, out);
        }
    }
}

/// One character of the decomposed, lowercased text (steps 3-6).
fn fold_char(c: char, span: (usize, usize), out: &mut Out) {
    if is_dropped(c) {
        // ۓ is a spelling of ئے (yeh + yeh barree): ے followed by hamza above folds like ئے
        // does (ئ → ی), whether typed as one character or two (canonically equivalent).
        if c == '\u{0654}' && out.yeh_barree {
            let (_, (start, _)) = out.pop().unwrap_or_default();
            out.other('\u{06CC}', (start, span.1));
            out.other('\u{06D2}', (start, span.1));
            out.yeh_barree = false;
            return;
        }
        // Only combining marks keep ے and a later hamza together (a joiner or tatweel would
        // have kept them from composing).
        if canonical_combining_class(c) == 0 {
            out.yeh_barree = false;
        }
        out.extend_last(span.1);
        return;
    }
    match c {
        'a'..='z' => out.latin(c, span),
        'ß' => {
            out.latin('s', span);
            out.latin('s', span);
        }
        c if c.is_whitespace() => out.other(' ', span),
        c => out.other(fold_letter(c), span),
    }
}

/// Step 3: characters that fold to nothing.
fn is_dropped(c: char) -> bool {
    canonical_combining_class(c) != 0
        || is_invisible(c)
        || matches!(
            c,
            '\u{0640}' // tatweel (kashida)
                | '\u{0674}' // high hamza (U+0675..U+0678 decompose to letter + U+0674)
                | '\u{06E5}' // Quranic small waw
                | '\u{06E6}' // Quranic small yeh
        )
}

/// Step 4: the folding table that remains after NFKD (each entry unit-tested).
fn fold_letter(c: char) -> char {
    match c {
        // Kaf: Arabic kaf (Arabic keyboards) and swash kaf → keheh.
        '\u{0643}' | '\u{06AA}' => '\u{06A9}',
        // Yeh: Arabic yeh (Arabic keyboards; ئ decomposes to it) and alef maksura → farsi yeh.
        '\u{064A}' | '\u{0649}' => '\u{06CC}',
        // Heh: Arabic heh ه, do-chashmi heh ھ, ae ە (ۀ decomposes to it), teh marbuta ة and
        // teh marbuta goal ۃ → heh goal ہ (ۂ decomposes to it). One heh: Arabic keyboards type
        // ه for both ہ and ھ, and Urdu writers swap them, so aspirated digraphs (بھ) and
        // consonant + h (بہ) match each other.
        '\u{0647}' | '\u{06BE}' | '\u{06D5}' | '\u{0629}' | '\u{06C3}' => '\u{06C1}',
        // Alef: alef wasla and alef with wavy hamza → alef (آ أ إ decompose to alef + mark).
        '\u{0671}' | '\u{0672}' | '\u{0673}' => '\u{0627}',
        // Noon ghunna → noon (Arabic and Persian keyboards have no ں: میں is typed مین).
        '\u{06BA}' => '\u{0646}',
        // Punctuation: Arabic comma, semicolon, question mark, percent sign, decimal and
        // thousands separators, Urdu full stop → ASCII.
        '\u{060C}' => ',',
        '\u{061B}' => ';',
        '\u{061F}' => '?',
        '\u{066A}' => '%',
        '\u{066B}' => '.',
        '\u{066C}' => ',',
        '\u{06D4}' => '.',
        // Final sigma (full case folding).
        'ς' => 'σ',
        c => ascii_digit(c).unwrap_or(c),
    }
}

/// The zero of every run of decimal digits (Unicode `Nd`, Unicode 14) that NFKD leaves alone:
/// Arabic-Indic, Extended Arabic-Indic (Urdu/Persian), NKo, Devanagari, Bengali... (fullwidth
/// and mathematical digits decompose to ASCII at step 1). Each run is ten code points, 0 to 9.
const DIGIT_ZEROS: [u32; 59] = [
    0x0030, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66, 0x0DE6,
    0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40,
    0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136,
    0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0,
    0x16A60, 0x16AC0, 0x16B50, 0x1E140, 0x1E2F0, 0x1E950,
];

/// A decimal digit of any script as its ASCII digit.
fn ascii_digit(c: char) -> Option<char> {
    let cp = c as u32;
    let i = DIGIT_ZEROS.partition_point(|&z| z <= cp).checked_sub(1)?;
    let value = cp - DIGIT_ZEROS[i];
    (value < 10).then(|| char::from(b'0' + value as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> String {
        fold(s)
    }

    /// Every entry of the table, letter by letter.
    #[test]
    fn the_folding_table_letter_by_letter() {
        let table = [
            ('\u{0643}', '\u{06A9}'), // ك → ک
            ('\u{06AA}', '\u{06A9}'), // ڪ → ک
            ('\u{064A}', '\u{06CC}'), // ي → ی
            ('\u{0649}', '\u{06CC}'), // ى → ی
            ('\u{0647}', '\u{06C1}'), // ه → ہ
            ('\u{06BE}', '\u{06C1}'), // ھ → ہ
            ('\u{06D5}', '\u{06C1}'), // ە → ہ
            ('\u{0629}', '\u{06C1}'), // ة → ہ
            ('\u{06C3}', '\u{06C1}'), // ۃ → ہ
            ('\u{0671}', '\u{0627}'), // ٱ → ا
            ('\u{0672}', '\u{0627}'), // ٲ → ا
            ('\u{0673}', '\u{0627}'), // ٳ → ا
            ('\u{06BA}', '\u{0646}'), // ں → ن
            ('\u{060C}', ','),
            ('\u{061B}', ';'),
            ('\u{061F}', '?'),
            ('\u{066A}', '%'),
            ('\u{066B}', '.'),
            ('\u{066C}', ','),
            ('\u{06D4}', '.'),
            ('ς', 'σ'),
        ];
        for (from, to) in table {
            assert_eq!(fold_letter(from), to, "U+{:04X}", from as u32);
            assert_eq!(f(&from.to_string()), to.to_string(), "U+{:04X} through fold", from as u32);
        }
        // Urdu letters are their own fold.
        for c in "اآبپتٹثجچحخدڈذرڑزژسشصضطظعغفقکگلمنوہھءیےںۓ".chars().filter(|c| fold_letter(*c) == *c)
        {
            let folded = f(&c.to_string());
            assert!(folded == c.to_string() || "آںھۓ".contains(c), "{c} → {folded}");
        }
    }

    /// Letters NFKD decomposes into a table letter plus a dropped mark.
    #[test]
    fn precomposed_letters_fold_through_their_decomposition() {
        for (from, to) in [
            ("آ", "ا"),                  // alef madda
            ("أ", "ا"),                  // alef hamza above
            ("إ", "ا"),                  // alef hamza below
            ("ؤ", "و"),                  // waw hamza
            ("ئ", "ی"),                  // yeh hamza (on the Arabic yeh)
            ("ۂ", "ہ"),                  // heh goal hamza
            ("ۀ", "ہ"),                  // heh with yeh above (ae + hamza)
            ("ۓ", "یے"),                 // yeh barree hamza: a spelling of ئے
            ("ے\u{0654}", "یے"),         // the same, decomposed
            ("ے\u{064E}\u{0654}", "یے"), // with another mark between
            ("ے\u{200C}\u{0654}", "ے"),  // a joiner keeps them apart (no ۓ)
            ("ٵ", "ا"),                  // high hamza alef (alef + U+0674)
            ("ٶ", "و"),                  // high hamza waw
            ("ٸ", "ی"),                  // high hamza yeh
        ] {
            assert_eq!(f(from), to, "{from}");
        }
        // Hamza spellings of one word meet (ہوئے, ہوۓ; لئے, لیے), a letter more does not (لیۓ).
        assert_eq!(f("ہوئے"), f("ہوۓ"));
        assert_eq!(f("ہوئے"), "ہویے");
        assert_eq!(f("لئے"), f("لیے"));
        assert_ne!(f("لیۓ"), f("لیے"));
        assert_ne!(f("ء"), "", "standalone hamza is a letter and stays");
    }

    #[test]
    fn nfkc_forms_fold_to_their_letters() {
        assert_eq!(f("\u{FEFB}"), "لا"); // lam-alef ligature
        assert_eq!(f("\u{FDF2}"), "اللہ"); // ALLAH ligature: alef lam lam shadda khari-zabar heh
        assert_eq!(f("الله"), "اللہ");
        assert_eq!(f("\u{FB8E}\u{FBFE}"), "کی"); // keheh and farsi yeh presentation forms
        assert_eq!(f("\u{FED9}"), "ک"); // Arabic kaf isolated form → kaf → keheh
        assert_eq!(f("\u{FB01}le"), "file"); // ﬁ ligature
        assert_eq!(f("ＳＡＬＡＡＭ"), "salam"); // fullwidth
        assert_eq!(f("𝐬𝐚𝐥𝐚𝐦"), "salam"); // mathematical bold
    }

    #[test]
    fn diacritics_are_dropped() {
        // Zabar, zer, pesh, tanwin (3), shadda, jazm, madda, hamza above/below, khari zabar.
        for mark in [
            '\u{064E}', '\u{0650}', '\u{064F}', '\u{064B}', '\u{064D}', '\u{064C}', '\u{0651}', '\u{0652}', '\u{0653}',
            '\u{0654}', '\u{0655}', '\u{0656}', '\u{0657}', '\u{0658}', '\u{065F}', '\u{0670}',
        ] {
            assert_eq!(f(&format!("ب{mark}ت")), "بت", "U+{:04X}", mark as u32);
        }
        // Quranic annotation marks U+06D6..U+06ED: the combining ones and the small waw/yeh.
        for cp in (0x06D6..=0x06DC).chain(0x06DF..=0x06E8).chain(0x06EA..=0x06ED) {
            let mark = char::from_u32(cp).unwrap();
            assert_eq!(f(&format!("ب{mark}ت")), "بت", "U+{cp:04X}");
        }
        // Honorifics (ؐ after a name).
        for cp in 0x0610..=0x061A {
            let mark = char::from_u32(cp).unwrap();
            assert_eq!(f(&format!("محمد{mark}")), "محمد", "U+{cp:04X}");
        }
        assert_eq!(f("مُحَمَّد"), "محمد");
        // Latin accents, after decomposition.
        assert_eq!(f("Crème Brûlée"), "creme brule");
        assert_eq!(f("Crème Brûlée"), f("creme brulee"));
        assert_eq!(f("İstanbul"), "istanbul");
    }

    #[test]
    fn tatweel_joiners_and_invisible_characters_are_dropped() {
        assert_eq!(f("کـــیـسـے"), "کیسے");
        for c in [
            '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{FEFF}', '\u{2060}', '\u{00AD}',
            '\u{034F}', '\u{FE0F}', '\u{202B}', '\u{2067}',
        ] {
            assert_eq!(f(&format!("ک{c}ی")), "کی", "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn digits_of_every_script_are_ascii() {
        for zero in DIGIT_ZEROS {
            for d in 0..10 {
                let c = char::from_u32(zero + d).unwrap();
                assert_eq!(f(&c.to_string()), d.to_string(), "U+{:04X}", zero + d);
            }
        }
        assert_eq!(f("۲۰۲۵"), "2025"); // Urdu (extended Arabic-Indic)
        assert_eq!(f("٢٠٢٥"), "2025"); // Arabic-Indic
        assert_eq!(f("２０２５"), "2025"); // fullwidth
        assert_eq!(f("२०२५"), "2025"); // Devanagari
        assert_eq!(f("①²"), "12"); // circled, superscript
        assert_eq!(f("٣٫٥٪"), "3.5%");
        // Not digits: the character after nine, and letters.
        assert_eq!(ascii_digit('\u{066A}'), None);
        assert_eq!(ascii_digit('a'), None);
        assert_eq!(ascii_digit('/'), None);
        assert_eq!(ascii_digit(':'), None);
    }

    #[test]
    fn whitespace_is_one_space() {
        assert_eq!(f("chai \n\t pani"), "chai pani");
        assert_eq!(f("chai\u{00A0}\u{3000}pani"), "chai pani");
        assert_eq!(fold_query("\u{200C} chai \u{200B}"), "chai");
    }

    #[test]
    fn latin_is_case_folded() {
        assert_eq!(f("SALAAM"), f("salaam"));
        assert_eq!(f("Straße"), f("STRASSE"));
        assert_eq!(f("ΣΟΦΟΣ"), f("σοφος"));
    }

    #[test]
    fn roman_urdu_spellings_meet() {
        for group in [
            &["salaam", "salam", "SALAAM", "Salām", "saalaam"][..],
            &["shukriya", "shukriyaa", "Shukriyaa"],
            &["kaise", "kese", "kaisee", "KESE"],
            &["main", "mein", "men"],
            &["accha", "acha"],
            &["theek", "thek", "thaik"],
        ] {
            let want = f(group[0]);
            for s in group {
                assert_eq!(f(s), want, "{s} vs {}", group[0]);
            }
        }
        assert_eq!(f("kaise"), "kese");
        assert_eq!(f("kaiise"), "kese");
        // What stays apart: word-final ai, ai before a vowel, other spellings.
        assert!(!f("cheeni").contains(&f("chai")));
        assert!(!f("bhejo").contains(&f("bhai")));
        assert!(!f("the").contains(&f("hai")));
        assert_eq!(f("chai"), "chai");
        assert_eq!(f("kaia"), "kaia");
        assert_ne!(f("kaise"), f("kaisay"));
        assert_ne!(f("hun"), f("hoon"));
        assert_ne!(f("khana"), f("kana"));
        assert_ne!(f("salam"), f("slam"));
        // Digits are not letters: no runs collapse in numbers.
        assert_eq!(f("1000"), "1000");
    }

    #[test]
    fn urdu_spellings_meet() {
        for group in [
            &["کیسے", "كيسے", "کَیسے", "کی\u{200C}سے", "کـیـسے"][..],
            &["آپ", "اپ", "أپ", "آپ"],
            &["بھائی", "بهائی", "بهائي", "بھا\u{200D}ئی"],
            &["میں", "مین", "ميں", "مين"],
            &["شکریہ", "شكريه", "شکریة", "شُکریہ"],
            &["اللہ", "الله", "\u{FDF2}", "اللّٰہ"],
        ] {
            let want = f(group[0]);
            for s in group {
                assert_eq!(f(s), want, "{s} vs {}", group[0]);
            }
        }
        assert_ne!(f("کیسے"), f("کیسی"), "yeh barree is not yeh");
        assert_ne!(f("ٹماٹر"), f("تماتر"), "retroflex letters stay");
    }

    #[test]
    fn matches_map_back_to_the_original_text() {
        let text = "سلام! آپ کَیسے ہیں؟";
        let m = fold_mapped(text);
        let r = m.find(&fold_query("كيسے")).unwrap();
        assert_eq!(&text[r], "کَیسے");
        // Tatweel, ZWNJ and diacritics inside and around the match.
        let text = "ابتدا ـــ میں\u{200C} کـــیَسِے؟ ہاں";
        let r = fold_mapped(text).find(&fold_query("کیسے")).unwrap();
        assert_eq!(&text[r], "کـــیَسِے");
        // A match inside a ligature is the whole ligature; after one, the right letters.
        let text = "ﷲ اکبر";
        let r = fold_mapped(text).find(&fold_query("اکبر")).unwrap();
        assert_eq!(&text[r], "اکبر");
        let r = fold_mapped(text).find(&fold_query("لل")).unwrap();
        assert_eq!(&text[r], "ﷲ");
        let text = "\u{FEFB}ہور";
        let r = fold_mapped(text).find(&fold_query("ہور")).unwrap();
        assert_eq!(&text[r], "ہور");
        // Roman Urdu runs and ai → e.
        let text = "Bohat SHUKRIYAA, aap kese hain?";
        let r = fold_mapped(text).find(&fold_query("shukriya")).unwrap();
        assert_eq!(&text[r], "SHUKRIYAA");
        let r = fold_mapped(text).find(&fold_query("kaise")).unwrap();
        assert_eq!(&text[r], "kese");
        // ۓ split by the fold.
        let text = "کیا ہوۓ تھے";
        let r = fold_mapped(text).find(&fold_query("ہوئے")).unwrap();
        assert_eq!(&text[r], "ہوۓ");
        assert_eq!(fold_mapped("abc").find(""), None);
        assert_eq!(fold_mapped("abc").find("x"), None);
    }

    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::sample::select(vec![
                'a', 'e', 'i', 'A', 'E', 's', 'ß', ' ', '\n', '\u{A0}', 'ک', 'ك', 'ی', 'ي', 'ے', 'ۓ', '\u{0654}', 'ہ',
                'ھ', 'ه', 'ا', 'آ', 'ـ', '\u{064E}', '\u{0670}', '\u{200C}', '\u{200D}', '\u{FEFF}', '\u{FDF2}',
                '\u{FEFB}', '\u{FDFA}', '۳', '٣', '3', '\u{FF13}', 'İ', 'é', '\u{301}', 'ﬁ', '가', 'ς',
            ]),
            any::<char>(),
        ]
    }

    proptest! {
        /// The fold is a function of the text's NFKC form: every normalisation of a text folds
        /// alike.
        #[test]
        fn normalisation_forms_fold_alike(chars in prop::collection::vec(tricky_char(), 0..24)) {
            use unicode_normalization::UnicodeNormalization;
            let t: String = chars.iter().collect();
            let folded = fold(&t);
            prop_assert_eq!(fold(&t.nfc().collect::<String>()), folded.clone());
            prop_assert_eq!(fold(&t.nfd().collect::<String>()), folded.clone());
            prop_assert_eq!(fold(&t.nfkc().collect::<String>()), folded.clone());
            prop_assert_eq!(fold(&t.nfkd().collect::<String>()), folded);
        }

        #[test]
        fn folding_is_idempotent_and_keeps_substrings(
            chars in prop::collection::vec(tricky_char(), 0..24),
            a in 0usize..24,
            b in 0usize..24,
        ) {
            let t: String = chars.iter().collect();
            let folded = fold(&t);
            prop_assert_eq!(fold(&folded), folded.clone());
            let mapped = fold_mapped(&t);
            prop_assert_eq!(&mapped.text, &folded);
            // Any run of whole words of the text is found in it (not any piece: the Roman Urdu
            // rule looks at the next letter, and ۓ at the mark after ے), and the match found
            // starts within the original characters it is mapped to.
            let (mut a, mut b) = (a.min(b).min(chars.len()), a.max(b).min(chars.len()));
            while a > 0 && !chars[a - 1].is_whitespace() {
                a -= 1;
            }
            while b < chars.len() && !chars[b].is_whitespace() {
                b += 1;
            }
            let q: String = chars[a..b].iter().collect();
            let needle = fold_query(&q);
            if !needle.is_empty() {
                prop_assert!(folded.contains(&needle), "{:?} in {:?}", needle, folded);
                let r = mapped.find(&needle).unwrap();
                prop_assert!(t.is_char_boundary(r.start) && t.is_char_boundary(r.end) && r.start < r.end);
                let from_start = fold(&t[r.start..]);
                let within = fold(&t[r.clone()]).len();
                prop_assert!(from_start.find(&needle).is_some_and(|p| p <= within), "{:?} at {:?}", needle, r);
            }
        }
    }
}
