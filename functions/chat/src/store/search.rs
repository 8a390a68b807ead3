//! Search over the caller's own conversations: titles first (the user's conversation index), then
//! message contents (the user's message index), both newest first. Titles and messages are matched
//! in their folded form (`fold`: Urdu letter variants, diacritics, joiners, digits, case, Roman
//! Urdu spellings), folded here on read: nothing extra is stored, so items written before folding
//! existed are found alike, and DynamoDB's `contains` (byte-exact) is not used. Snippets show the
//! original text, with the match located in it through the fold's map.
//!
//! Work is bounded: at most `max_items` index items are read per request, whatever the data. When
//! the budget or the result limit runs out first, the page carries a cursor that resumes right
//! after the last item read, so a client can keep searching older data page by page.

use aws_sdk_dynamodb::types::KeysAndAttributes;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;
use unicode_normalization::char::canonical_combining_class;

use super::cursor::Cursor;
use super::fold::{fold, fold_mapped, fold_query};
use super::ids::{ConversationId, MessageId};
use super::model::{Conversation, Item, StoredMessage};
use super::{ConversationStore, StoreError, build, key, keys};

/// Items read per Query page (further bounded by the remaining budget).
const PAGE: usize = 100;
/// Characters of context on each side of a match in a snippet.
const SNIPPET_SIDE: usize = 60;

/// Where a search matched: the conversation's title or one of its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Matched {
    Title,
    Content,
}

/// Where the match is in a snippet: characters (Unicode scalar values) of `snippet`, from `start`
/// up to (not including) `end`. The query may be spelled differently from the text it matched
/// (`کیسے` finds `كيسے`, `salam` finds `SALAAM`), so this is how a client highlights it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Highlight {
    #[schema(minimum = 0, example = 12)]
    pub start: usize,
    #[schema(minimum = 0, example = 17)]
    pub end: usize,
}

/// One search result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub conversation: Conversation,
    pub matched: Matched,
    /// The original text around the first match (the title itself for title matches).
    pub snippet: String,
    /// Where the match is in `snippet`.
    pub highlight: Highlight,
    /// The matching message (`content` matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message_id: Option<MessageId>,
}

#[derive(Debug, Clone)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub next: Option<Cursor>,
    /// Index items read to produce this page.
    pub scanned: usize,
}

/// The first match of `needle` (a folded query, see [`fold_query`]) in `text`: its byte range in
/// `text`, on character boundaries. The fold's map is only built for text that matches.
pub fn find(text: &str, needle: &str) -> Option<Range<usize>> {
    if needle.is_empty() || !fold(text).contains(needle) {
        return None;
    }
    fold_mapped(text).find(needle)
}

/// A character that belongs to the one before it (a combining mark): a snippet does not start
/// or end between them.
fn continues(c: char) -> bool {
    canonical_combining_class(c) != 0 || matches!(c, '\u{FE00}'..='\u{FE0F}')
}

/// About `SNIPPET_SIDE` characters either side of the match at byte range `at` of `text`,
/// whitespace collapsed, with ellipses where text was cut, and where the match is in it.
pub fn snippet(text: &str, at: Range<usize>) -> (String, Highlight) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let first = chars.partition_point(|&(b, _)| b < at.start);
    let last = chars.partition_point(|&(b, _)| b < at.end).max(first + 1);
    let mut start = first.saturating_sub(SNIPPET_SIDE);
    while start > 0 && continues(chars[start].1) {
        start -= 1;
    }
    let mut end = (last + SNIPPET_SIDE).min(chars.len());
    while end < chars.len() && continues(chars[end].1) {
        end += 1;
    }
    let mut out = String::new();
    let mut n = 0;
    if start > 0 {
        out.push('…');
        n += 1;
    }
    let (mut hl_start, mut hl_end) = (n, n);
    let mut space = false;
    for (i, &(_, c)) in chars.iter().enumerate().take(end).skip(start) {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && n > usize::from(start > 0) {
            out.push(' ');
            n += 1;
        }
        space = false;
        if i == first {
            hl_start = n;
        }
        out.push(c);
        n += 1;
        if i < last {
            hl_end = n;
        }
    }
    if end < chars.len() {
        out.push('…');
    }
    (out, Highlight { start: hl_start, end: hl_end.max(hl_start) })
}

/// The whole title, and where the match at byte range `at` is in it.
fn title_snippet(title: &str, at: Range<usize>) -> (String, Highlight) {
    let start = title[..at.start].chars().count();
    let end = start + title[at].chars().count();
    (title.to_string(), Highlight { start, end })
}

enum Phase {
    Titles(Option<ConversationId>),
    Content(Option<(ConversationId, MessageId)>),
}

impl ConversationStore {
    /// One page of search results. `query` is the user's text (trimmed, non-empty: the caller
    /// validates it); `resume` a search cursor from a previous page.
    pub async fn search(
        &self,
        user_id: &str,
        query: &str,
        limit: usize,
        resume: Option<Cursor>,
        max_items: usize,
    ) -> Result<SearchPage, StoreError> {
        let needle = fold_query(query);
        if needle.is_empty() {
            // Only marks, tatweel or joiners: nothing to look for.
            return Ok(SearchPage { hits: Vec::new(), next: None, scanned: 0 });
        }
        let mut phase = match resume {
            None => Phase::Titles(None),
            Some(Cursor::SearchTitles(c)) => Phase::Titles(Some(c)),
            Some(Cursor::SearchContentStart) => Phase::Content(None),
            Some(Cursor::SearchContent(c, m)) => Phase::Content(Some((c, m))),
            Some(_) => return Err(StoreError::Corrupt("not a search cursor".into())),
        };
        let mut budget = max_items;
        let mut scanned = 0;
        let mut hits: Vec<SearchHit> = Vec::new();
        let mut seen: HashSet<ConversationId> = HashSet::new();
        // Content matches whose conversation still has to be checked (live, owned) and titled.
        let mut pending: Vec<(ConversationId, MessageId, (String, Highlight))> = Vec::new();
        let mut next: Option<Cursor> = None;

        'outer: loop {
            if budget == 0 {
                next = match phase {
                    Phase::Titles(Some(c)) => Some(Cursor::SearchTitles(c)),
                    Phase::Titles(None) => None,
                    Phase::Content(None) => Some(Cursor::SearchContentStart),
                    Phase::Content(Some((c, m))) => Some(Cursor::SearchContent(c, m)),
                };
                break;
            }
            let page = budget.min(PAGE);
            match phase {
                Phase::Titles(after) => {
                    let start = after.map(|c| keys::conv_index_key(user_id, c));
                    let partition = keys::user_conversations(user_id);
                    let out = self.newest_first("search titles", partition, page, start).await?;
                    let mut last = after;
                    for item in out.items() {
                        budget = budget.saturating_sub(1);
                        scanned += 1;
                        let c = Conversation::from_item(item)?;
                        let id = c.id;
                        last = Some(id);
                        if c.user_id == user_id
                            && !c.deleted
                            && !seen.contains(&c.id)
                            && let Some(at) = find(&c.title, &needle)
                        {
                            seen.insert(c.id);
                            let (snippet, highlight) = title_snippet(&c.title, at);
                            hits.push(SearchHit {
                                snippet,
                                highlight,
                                conversation: c,
                                matched: Matched::Title,
                                message_id: None,
                            });
                            if hits.len() >= limit {
                                next = Some(Cursor::SearchTitles(id));
                                break 'outer;
                            }
                        }
                    }
                    phase = if out.last_evaluated_key().is_some() && !out.items().is_empty() {
                        Phase::Titles(last)
                    } else {
                        Phase::Content(None)
                    };
                }
                Phase::Content(after) => {
                    let start = after.map(|(c, m)| keys::msg_index_key(user_id, c, m));
                    let partition = keys::user_messages(user_id);
                    let out = self.newest_first("search messages", partition, page, start).await?;
                    let mut last = after;
                    for item in out.items() {
                        budget = budget.saturating_sub(1);
                        scanned += 1;
                        let found = StoredMessage::from_item(item)?;
                        let (cid, mid) = (found.conversation, found.message.id);
                        last = Some((cid, mid));
                        if found.user_id != user_id || seen.contains(&cid) {
                            continue;
                        }
                        let content = &found.message.content;
                        if let Some(at) = find(content, &needle) {
                            seen.insert(cid);
                            pending.push((cid, mid, snippet(content, at)));
                            if hits.len() + pending.len() >= limit {
                                next = Some(Cursor::SearchContent(cid, mid));
                                break 'outer;
                            }
                        }
                    }
                    if out.last_evaluated_key().is_some() && !out.items().is_empty() {
                        phase = Phase::Content(last);
                    } else {
                        break;
                    }
                }
            }
        }

        let conversations = self.conversations_by_id(user_id, pending.iter().map(|p| p.0).collect()).await?;
        for (cid, mid, (snippet, highlight)) in pending {
            if let Some(c) = conversations.get(&cid) {
                hits.push(SearchHit {
                    conversation: c.clone(),
                    matched: Matched::Content,
                    snippet,
                    highlight,
                    message_id: Some(mid),
                });
            }
        }
        Ok(SearchPage { hits, next, scanned })
    }

    /// The live conversations of this user among `ids` (BatchGetItem; others are left out).
    async fn conversations_by_id(
        &self,
        user_id: &str,
        ids: Vec<ConversationId>,
    ) -> Result<HashMap<ConversationId, Conversation>, StoreError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(100) {
            let mut keys: Vec<Item> = chunk.iter().map(|&c| key(keys::conv_pk(c), keys::META_SK)).collect();
            for attempt in 0..5u32 {
                if keys.is_empty() {
                    break;
                }
                let request = build(KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build())?;
                let out = self
                    .table
                    .client()
                    .batch_get_item()
                    .request_items(self.table.name(), request)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("read conversations", e))?;
                for item in
                    out.responses().and_then(|r| r.get(self.table.name())).map(Vec::as_slice).unwrap_or_default()
                {
                    let c = Conversation::from_item(item)?;
                    if c.user_id == user_id && !c.deleted {
                        found.insert(c.id, c);
                    }
                }
                keys = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(self.table.name()))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !keys.is_empty() {
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snippet and the highlighted part of it, for a query.
    fn hit(text: &str, query: &str) -> Option<(String, String)> {
        let at = find(text, &fold_query(query))?;
        let (snip, h) = snippet(text, at);
        let marked: String = snip.chars().skip(h.start).take(h.end - h.start).collect();
        Some((snip, marked))
    }

    #[test]
    fn finds_case_insensitively_across_scripts() {
        assert_eq!(find("Hello World", &fold_query("world")), Some(6..11));
        assert_eq!(find("ÄPFEL und Birnen", &fold_query("äpfel")), Some(0..6));
        assert_eq!(find("Mera naam Ali hai", &fold_query("ali")), Some(10..13));
        let urdu = "میرا نام علی ہے";
        assert_eq!(&urdu[find(urdu, &fold_query("علی")).unwrap()], "علی");
        assert_eq!(find("abc", &fold_query("abcd")), None);
        assert_eq!(find("abc", ""), None);
        // A char whose lowercase is longer than itself keeps positions right after it.
        let t = "İstanbul x";
        assert_eq!(&t[find(t, "x").unwrap()], "x");
    }

    #[test]
    fn snippets_cut_around_the_match() {
        let text = format!("{} needle {}", "a ".repeat(100), "b ".repeat(100));
        let (snip, marked) = hit(&text, "needle").unwrap();
        assert!(snip.starts_with('…') && snip.ends_with('…'));
        assert_eq!(marked, "needle");
        assert!(snip.chars().count() <= 2 * SNIPPET_SIDE + 6 + 2);
        let (snip, h) = snippet("short\n\ntext", 7..11);
        assert_eq!((snip.as_str(), h), ("short text", Highlight { start: 6, end: 10 }));
        assert_eq!(snippet("  lead", 2..6).1, Highlight { start: 0, end: 4 });
    }

    /// The folded text is shorter or longer than the original: the snippet still shows the
    /// original, centred on the match, with the highlight on the matched original text.
    #[test]
    fn snippets_locate_the_match_when_the_fold_changes_lengths() {
        // 100 diacritics, tatweels and joiners before the match shrink the fold by 100 chars.
        let noise = "بَ\u{200C}ـ".repeat(25);
        let text = format!("{noise} آپ کَیــسِے ہیں؟ {}", "دوست ".repeat(30));
        let (snip, marked) = hit(&text, "كيسے").unwrap();
        assert_eq!(marked, "کَیــسِے");
        assert!(snip.contains("آپ کَیــسِے ہیں؟"), "{snip}");
        // Ligatures expand: ﷲ is four letters folded, ﻻ two.
        let text = format!("{} ﻻہور میں {}", "\u{FDF2} ".repeat(40), "x".repeat(10));
        let (snip, marked) = hit(&text, "لاہور").unwrap();
        assert_eq!(marked, "ﻻہور");
        assert!(snip.ends_with(&format!("ﻻہور میں {}", "x".repeat(10))), "{snip}");
        // Roman Urdu runs shrink, e → ai grows.
        let text = "Bohat SHUKRIYAAA!! Aap kese hain? Main theek hoon.";
        assert_eq!(hit(text, "shukriya").unwrap().1, "SHUKRIYAAA");
        assert_eq!(hit(text, "kaise").unwrap().1, "kese");
        assert_eq!(hit(text, "THEK").unwrap().1, "theek");
        // A match ending in marks keeps them.
        assert_eq!(hit("کیسےَ ہو", "کیسے").unwrap().1, "کیسےَ");
        // A snippet neither starts nor ends between a letter and its marks.
        let text = format!("ب\u{064E}\u{0651}{}کیسے", "y".repeat(SNIPPET_SIDE - 2));
        let (snip, marked) = hit(&text, "کیسے").unwrap();
        assert_eq!(marked, "کیسے");
        assert!(snip.starts_with("ب\u{064E}\u{0651}"), "{snip}");
        let text = format!("کیسے{}ب\u{064E}\u{0651}zz", "y".repeat(SNIPPET_SIDE - 1));
        let (snip, _) = hit(&text, "کیسے").unwrap();
        assert!(snip.ends_with("ب\u{064E}\u{0651}…"), "{snip}");
    }

    #[test]
    fn title_snippets_are_the_title() {
        let title = "Salaam! آپ كيسے ہیں؟";
        let at = find(title, &fold_query("کیسے")).unwrap();
        let (snip, h) = title_snippet(title, at);
        assert_eq!(snip, title);
        assert_eq!(snip.chars().skip(h.start).take(h.end - h.start).collect::<String>(), "كيسے");
    }
}
