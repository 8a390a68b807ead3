//! Opaque pagination cursors. A cursor carries only the position (the ids of the last item a
//! page returned), never a raw DynamoDB key: on the way back it is decoded strictly (bounded length,
//! base64url, version, kind, canonical ids) and the `ExclusiveStartKey` is rebuilt from those ids
//! and the *authenticated* user's own partition. A tampered cursor is therefore either rejected
//! (422) or a position inside the caller's own data; it can never reach another user's items.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ids::{ConversationId, MessageId};

/// Longest encoded cursor accepted (the longest real one is about 110 characters).
pub const MAX_CURSOR_LEN: usize = 200;
const VERSION: &str = "v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The user's conversation list, after this conversation.
    Conversations(ConversationId),
    /// A conversation's messages (newest first), after this message.
    Messages(ConversationId, MessageId),
    /// Search: titles, after this conversation.
    SearchTitles(ConversationId),
    /// Search: titles are done; message contents from the newest.
    SearchContentStart,
    /// Search: message contents, after this message (of this conversation).
    SearchContent(ConversationId, MessageId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not valid")]
pub struct InvalidCursor;

impl Cursor {
    pub fn encode(&self) -> String {
        let raw = match self {
            Cursor::Conversations(c) => format!("{VERSION}:c:{c}"),
            Cursor::Messages(c, m) => format!("{VERSION}:m:{c}:{m}"),
            Cursor::SearchTitles(c) => format!("{VERSION}:st:{c}"),
            Cursor::SearchContentStart => format!("{VERSION}:s0"),
            Cursor::SearchContent(c, m) => format!("{VERSION}:sc:{c}:{m}"),
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Result<Self, InvalidCursor> {
        if s.is_empty() || s.len() > MAX_CURSOR_LEN {
            return Err(InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| InvalidCursor)?;
        let raw = std::str::from_utf8(&bytes).map_err(|_| InvalidCursor)?;
        let parts: Vec<&str> = raw.split(':').collect();
        let conv = |s: &str| s.parse::<ConversationId>().map_err(|_| InvalidCursor);
        let msg = |s: &str| s.parse::<MessageId>().map_err(|_| InvalidCursor);
        match parts.as_slice() {
            [VERSION, "c", c] => Ok(Cursor::Conversations(conv(c)?)),
            [VERSION, "m", c, m] => Ok(Cursor::Messages(conv(c)?, msg(m)?)),
            [VERSION, "st", c] => Ok(Cursor::SearchTitles(conv(c)?)),
            [VERSION, "s0"] => Ok(Cursor::SearchContentStart),
            [VERSION, "sc", c, m] => Ok(Cursor::SearchContent(conv(c)?, msg(m)?)),
            _ => Err(InvalidCursor),
        }
    }

    pub fn is_search(&self) -> bool {
        matches!(self, Cursor::SearchTitles(_) | Cursor::SearchContentStart | Cursor::SearchContent(..))
    }
}

/// Cursors arrive as query parameters: a cursor that does not decode is a field error there.
impl<'de> serde::Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cursor::decode(&s).map_err(|_| serde::de::Error::custom("is not a valid cursor"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all() -> Vec<Cursor> {
        let (c, m) = (ConversationId::new(), MessageId::new());
        vec![
            Cursor::Conversations(c),
            Cursor::Messages(c, m),
            Cursor::SearchTitles(c),
            Cursor::SearchContentStart,
            Cursor::SearchContent(c, m),
        ]
    }

    #[test]
    fn round_trips_and_stays_short_and_url_safe() {
        for cur in all() {
            let s = cur.encode();
            assert!(s.len() <= MAX_CURSOR_LEN, "{s}");
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{s}");
            assert_eq!(Cursor::decode(&s), Ok(cur));
        }
    }

    #[test]
    fn tampered_cursors_are_rejected() {
        let c = ConversationId::new();
        let enc = |raw: &str| URL_SAFE_NO_PAD.encode(raw);
        let good = Cursor::Conversations(c).encode();
        let hostile = [
            String::new(),
            "not base64 !!".into(),
            format!("{good}="),
            good.chars().rev().collect(),
            "A".repeat(MAX_CURSOR_LEN + 1),
            enc(&format!("v2:c:{c}")),
            enc(&format!("v1:x:{c}")),
            enc(&format!("v1:c:{c}:extra")),
            enc(&format!("v1:c:{}", c.to_string().to_uppercase())),
            enc("v1:c:CONV#x"),
            enc(r#"{"pk":{"S":"CONV#someone-else"},"sk":{"S":"META"}}"#),
            enc("v1:m:not-a-uuid:also-not"),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x00]),
        ];
        for h in hostile {
            assert_eq!(Cursor::decode(&h), Err(InvalidCursor), "{h:?}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in ".{0,300}") {
            let _ = Cursor::decode(&s);
        }
    }
}
