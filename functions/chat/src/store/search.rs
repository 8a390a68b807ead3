//! Search over the caller's own conversations: titles first (the user's conversation index), then
//! message contents (the user's message index), both newest first. Matching is case-insensitive
//! (Unicode lowercase) and done here, since DynamoDB's `contains` is case-sensitive.
//!
//! Work is bounded: at most `max_items` index items are read per request, whatever the data. When
//! the budget or the result limit runs out first, the page carries a cursor that resumes right
//! after the last item read, so a client can keep searching older data page by page.

use aws_sdk_dynamodb::types::KeysAndAttributes;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::cursor::Cursor;
use super::ids::{ConversationId, MessageId};
use super::model::{Conversation, Item, s};
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

/// One search result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub conversation: Conversation,
    pub matched: Matched,
    /// Text around the first match (the title itself for title matches).
    pub snippet: String,
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

/// Case-insensitive search of `needle_lower` (already lowercased) in `haystack`; returns the
/// char index in `haystack` where the match starts.
pub fn find_ci(haystack: &str, needle_lower: &str) -> Option<usize> {
    if needle_lower.is_empty() {
        return None;
    }
    let mut lower = String::with_capacity(haystack.len());
    // For each byte of `lower`: the char index in `haystack` it came from.
    let mut origin = Vec::with_capacity(haystack.len());
    for (ci, ch) in haystack.chars().enumerate() {
        for l in ch.to_lowercase() {
            let before = lower.len();
            lower.push(l);
            origin.extend(std::iter::repeat_n(ci, lower.len() - before));
        }
    }
    lower.find(needle_lower).map(|b| origin[b])
}

/// About `SNIPPET_SIDE` characters either side of the match at char index `at`, whitespace
/// collapsed, with ellipses where text was cut.
pub fn snippet(text: &str, at: usize, needle_chars: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let start = at.saturating_sub(SNIPPET_SIDE);
    let end = (at + needle_chars + SNIPPET_SIDE).min(chars.len());
    let body: String = chars[start..end].iter().collect();
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{}{body}{}", if start > 0 { "…" } else { "" }, if end < chars.len() { "…" } else { "" })
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
        let needle = query.to_lowercase();
        let needle_chars = query.chars().count();
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
        let mut pending: Vec<(ConversationId, MessageId, String)> = Vec::new();
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
                    let start = after.map(|c| {
                        Item::from([
                            ("pk".into(), s(keys::conv_pk(c))),
                            ("sk".into(), s(keys::META_SK)),
                            ("gsi1pk".into(), s(keys::user_conversations(user_id))),
                            ("gsi1sk".into(), s(keys::conv_gsi_sk(c))),
                        ])
                    });
                    let out = self
                        .client()
                        .query()
                        .table_name(self.table())
                        .index_name(keys::INDEX)
                        .key_condition_expression("#gpk = :gpk")
                        .expression_attribute_names("#gpk", "gsi1pk")
                        .expression_attribute_values(":gpk", s(keys::user_conversations(user_id)))
                        .scan_index_forward(false)
                        .limit(page as i32)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| StoreError::dynamo("search titles", e))?;
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
                            && find_ci(&c.title, &needle).is_some()
                        {
                            seen.insert(c.id);
                            hits.push(SearchHit {
                                snippet: c.title.clone(),
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
                    let start = after.map(|(c, m)| {
                        Item::from([
                            ("pk".into(), s(keys::conv_pk(c))),
                            ("sk".into(), s(keys::msg_sk(m))),
                            ("gsi1pk".into(), s(keys::user_messages(user_id))),
                            ("gsi1sk".into(), s(keys::msg_sk(m))),
                        ])
                    });
                    let out = self
                        .client()
                        .query()
                        .table_name(self.table())
                        .index_name(keys::INDEX)
                        .key_condition_expression("#gpk = :gpk")
                        .expression_attribute_names("#gpk", "gsi1pk")
                        .expression_attribute_values(":gpk", s(keys::user_messages(user_id)))
                        .scan_index_forward(false)
                        .limit(page as i32)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| StoreError::dynamo("search messages", e))?;
                    let mut last = after;
                    for item in out.items() {
                        budget = budget.saturating_sub(1);
                        scanned += 1;
                        let (Some(cid), Some(mid)) = (
                            item.get("pk").and_then(|v| v.as_s().ok()).and_then(|pk| keys::parse_conv_pk(pk)),
                            item.get("sk").and_then(|v| v.as_s().ok()).and_then(|sk| keys::parse_msg_sk(sk)),
                        ) else {
                            continue;
                        };
                        last = Some((cid, mid));
                        let owned = item.get("user_id").and_then(|v| v.as_s().ok()).is_some_and(|u| u == user_id);
                        let content = item.get("content").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("");
                        if !owned || seen.contains(&cid) {
                            continue;
                        }
                        if let Some(at) = find_ci(content, &needle) {
                            seen.insert(cid);
                            pending.push((cid, mid, snippet(content, at, needle_chars)));
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
        for (cid, mid, snip) in pending {
            if let Some(c) = conversations.get(&cid) {
                hits.push(SearchHit {
                    conversation: c.clone(),
                    matched: Matched::Content,
                    snippet: snip,
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
                    .client()
                    .batch_get_item()
                    .request_items(self.table(), request)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("read conversations", e))?;
                for item in out.responses().and_then(|r| r.get(self.table())).map(Vec::as_slice).unwrap_or_default() {
                    let c = Conversation::from_item(item)?;
                    if c.user_id == user_id && !c.deleted {
                        found.insert(c.id, c);
                    }
                }
                keys = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(self.table()))
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

    #[test]
    fn finds_case_insensitively_across_scripts() {
        assert_eq!(find_ci("Hello World", "world"), Some(6));
        assert_eq!(find_ci("ÄPFEL und Birnen", "äpfel"), Some(0));
        assert_eq!(find_ci("Mera naam Ali hai", "ali"), Some(10));
        assert_eq!(find_ci("میرا نام علی ہے", "علی"), Some(9));
        assert_eq!(find_ci("abc", "abcd"), None);
        assert_eq!(find_ci("abc", ""), None);
        // A char whose lowercase is longer than itself keeps indexes right after it.
        assert_eq!(find_ci("İstanbul x", "x"), Some(9));
    }

    #[test]
    fn snippets_cut_around_the_match() {
        let text = format!("{} needle {}", "a ".repeat(100), "b ".repeat(100));
        let at = find_ci(&text, "needle").unwrap();
        let snip = snippet(&text, at, 6);
        assert!(snip.starts_with('…') && snip.ends_with('…'));
        assert!(snip.contains("needle"));
        assert!(snip.chars().count() <= 2 * SNIPPET_SIDE + 6 + 2);
        assert_eq!(snippet("short\n\ntext", 0, 5), "short text");
    }
}
