//! The context sent upstream: the mode's system prompt, then the conversation's most recent
//! messages, oldest first. The newest are kept: at most `max_messages`, and fewer when their
//! estimated size exceeds the budget (the newest message is always sent).

use crate::providers::wire::{ContentPart, ImageUrl, WireContent, WireMessage, WireRole};
use crate::store::model::{Message, Role};

/// A deliberately pessimistic token estimate: one token per three UTF-8 bytes plus a per-message
/// overhead. English runs about four bytes per token and Urdu script about two to three, so this
/// rarely underestimates, and no tokenizer per provider is needed.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(3) + 4
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextLimits {
    pub max_messages: usize,
    /// Estimated tokens for the whole prompt (system prompt and messages).
    pub budget_tokens: usize,
}

impl ContextLimits {
    /// The configured limits, tightened by the model's context length minus room for the answer.
    pub fn for_model(max_messages: usize, budget_tokens: usize, context_length: u32, max_tokens: Option<u32>) -> Self {
        let context_length = context_length as usize;
        let answer_reserve = max_tokens.map(|t| t as usize).unwrap_or(1024.min(context_length / 4));
        let model_budget = context_length.saturating_sub(answer_reserve);
        Self { max_messages, budget_tokens: budget_tokens.min(model_budget) }
    }
}

/// Index of the first message of `history` (oldest first) to send: a suffix is always chosen.
pub fn context_start(history: &[Message], limits: ContextLimits, system_tokens: usize) -> usize {
    let window_start = history.len().saturating_sub(limits.max_messages);
    let mut used = system_tokens;
    let mut start = history.len();
    for i in (window_start..history.len()).rev() {
        let t = estimate_tokens(&history[i].content);
        if start < history.len() && used + t > limits.budget_tokens {
            break;
        }
        used += t;
        start = i;
    }
    start
}

/// The upstream messages: system prompt, then `history[start..]`; `images` go with the last
/// message (the user's new prompt).
pub fn build(system_prompt: String, history: &[Message], images: &[String]) -> Vec<WireMessage> {
    let mut out = Vec::with_capacity(history.len() + 1);
    out.push(WireMessage::text(WireRole::System, system_prompt));
    let last = history.len().saturating_sub(1);
    for (i, m) in history.iter().enumerate() {
        let role = match m.role {
            Role::User => WireRole::User,
            Role::Assistant => WireRole::Assistant,
        };
        if i == last && !images.is_empty() {
            let mut parts = vec![ContentPart::Text { text: m.content.clone() }];
            parts.extend(images.iter().map(|u| ContentPart::ImageUrl { image_url: ImageUrl { url: u.clone() } }));
            out.push(WireMessage { role, content: WireContent::Parts(parts) });
        } else {
            out.push(WireMessage::text(role, m.content.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ids::MessageId;
    use crate::store::model::MessageStatus;

    fn msg(i: usize, len: usize) -> Message {
        Message {
            id: MessageId::new(),
            role: if i.is_multiple_of(2) { Role::User } else { Role::Assistant },
            content: format!("{i:>4}{}", "x".repeat(len.saturating_sub(4))),
            status: MessageStatus::Complete,
            created_at: String::new(),
            model: None,
            provider: None,
            usage: None,
            attachments: vec![],
        }
    }

    #[test]
    fn keeps_the_newest_n_in_order() {
        let history: Vec<Message> = (0..60).map(|i| msg(i, 10)).collect();
        let limits = ContextLimits { max_messages: 50, budget_tokens: 1_000_000 };
        let start = context_start(&history, limits, 10);
        assert_eq!(start, 10);
        let wire = build("sys".into(), &history[start..], &[]);
        assert_eq!(wire.len(), 51);
        assert_eq!(wire[0].role, WireRole::System);
        assert_eq!(wire[1].content, WireContent::Text(history[10].content.clone()));
        assert_eq!(wire[50].content, WireContent::Text(history[59].content.clone()));
    }

    #[test]
    fn trims_further_to_the_budget_keeping_the_newest() {
        let history: Vec<Message> = (0..10).map(|i| msg(i, 300)).collect(); // 104 tokens each
        let limits = ContextLimits { max_messages: 50, budget_tokens: 100 + 3 * 104 };
        assert_eq!(context_start(&history, limits, 100), 7);
        // Even a newest message larger than the whole budget is sent (alone).
        let limits = ContextLimits { max_messages: 50, budget_tokens: 10 };
        assert_eq!(context_start(&history, limits, 100), 9);
        assert_eq!(context_start(&[], limits, 0), 0);
    }

    #[test]
    fn model_context_length_tightens_the_budget() {
        let l = ContextLimits::for_model(50, 24_000, 8_192, Some(2_000));
        assert_eq!(l.budget_tokens, 6_192);
        let l = ContextLimits::for_model(50, 24_000, 131_072, None);
        assert_eq!(l.budget_tokens, 24_000);
        let l = ContextLimits::for_model(50, 24_000, 1_000, Some(5_000));
        assert_eq!(l.budget_tokens, 0);
    }

    #[test]
    fn estimate_is_pessimistic_for_urdu_and_english() {
        assert!(estimate_tokens("hello world, how are you today?") >= 8);
        assert!(estimate_tokens("آپ کیسے ہیں") >= 6);
    }

    #[test]
    fn images_go_with_the_newest_message() {
        let history = vec![msg(0, 10), msg(1, 10), msg(2, 10)];
        let wire = build("s".into(), &history, &["https://img.example/a.png".into()]);
        assert!(matches!(&wire[1].content, WireContent::Text(_)));
        match &wire[3].content {
            WireContent::Parts(p) => assert_eq!(p.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
