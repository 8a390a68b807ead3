//! Conversation titles made from the first message: trimmed, whitespace collapsed, control characters
//! dropped, at most `MAX_TITLE` characters (cut at a word boundary with an ellipsis when long). A title
//! a user sets follows the shared identifier rule (`RenameRequest`'s `Validate`).

pub const MAX_TITLE: usize = 80;
pub const FALLBACK_TITLE: &str = "New conversation";

/// Whitespace runs become one space; other control characters are dropped.
fn clean(text: &str) -> String {
    text.split_whitespace()
        .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn from_message(message: &str) -> String {
    let text = clean(message);
    if text.is_empty() {
        return FALLBACK_TITLE.to_string();
    }
    if text.chars().count() <= MAX_TITLE {
        return text;
    }
    let cut: String = text.chars().take(MAX_TITLE - 1).collect();
    // Prefer a word boundary unless that would throw away more than half the title.
    let cut = match cut.rfind(' ') {
        Some(i) if cut[..i].chars().count() >= MAX_TITLE / 2 => cut[..i].to_string(),
        _ => cut,
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_messages_are_their_own_title() {
        assert_eq!(from_message("  Salaam,\n\tkya haal hai?  "), "Salaam, kya haal hai?");
        assert_eq!(from_message("آپ کیسے ہیں؟"), "آپ کیسے ہیں؟");
        assert_eq!(from_message(" \n\u{0007} "), FALLBACK_TITLE);
    }

    #[test]
    fn long_messages_are_cut_at_a_word() {
        let msg = "Please explain how the Urdu nastaliq script is rendered on the web and why it is hard for browsers";
        let t = from_message(msg);
        assert!(t.chars().count() <= MAX_TITLE, "{t}");
        assert!(t.ends_with('…'));
        assert!(msg.starts_with(t.trim_end_matches('…')));
        assert!(!t.trim_end_matches('…').ends_with(' '));
        let unbroken = "x".repeat(200);
        assert_eq!(from_message(&unbroken).chars().count(), MAX_TITLE);
    }

    proptest! {
        #[test]
        fn always_bounded_and_clean(s in "\\PC{0,300}|[\\s\\S]{0,300}") {
            let t = from_message(&s);
            prop_assert!(t.chars().count() <= MAX_TITLE);
            prop_assert!(!t.is_empty());
            prop_assert!(!t.chars().any(|c| c.is_control()));
            prop_assert_eq!(t.trim(), t.as_str());
        }
    }
}
