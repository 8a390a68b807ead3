//! Conversation management: list, read, rename, delete, search, always within the caller's own
//! conversations (another user's is "not found", never "forbidden").

use baatcheet_shared::FieldError;
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::validation::{Report, text};

use super::{ChatError, ChatService, owner};
use crate::api::{
    ConversationDetail, ConversationList, MAX_PAGE, MAX_SEARCH_PAGE, PageRequest, SearchRequest, SearchResults,
    check_search,
};
use crate::store::cursor::Cursor;
use crate::store::ids::ConversationId;
use crate::store::model::Conversation;
use crate::title;

fn bad_cursor() -> ChatError {
    ChatError::Invalid(vec![FieldError::new("/query/cursor", "is not a valid cursor")])
}

impl ChatService {
    /// The caller's conversations, newest first.
    pub async fn list_conversations(&self, user: &AuthUser, page: PageRequest) -> Result<ConversationList, ChatError> {
        let after = match page.cursor {
            None => None,
            Some(Cursor::Conversations(c)) => Some(c),
            Some(_) => return Err(bad_cursor()),
        };
        let p = self.store.list(owner(user), page.limit.clamp(1, MAX_PAGE), after).await?;
        Ok(ConversationList { conversations: p.items, next_cursor: p.next.map(|c| c.encode()) })
    }

    /// One conversation with a page of its messages (the newest page first).
    pub async fn get_conversation(
        &self,
        user: &AuthUser,
        id: ConversationId,
        page: PageRequest,
    ) -> Result<ConversationDetail, ChatError> {
        let before = match page.cursor {
            None => None,
            Some(Cursor::Messages(c, m)) if c == id => Some(m),
            Some(_) => return Err(bad_cursor()),
        };
        let (conversation, p) = self.store.messages(owner(user), id, page.limit.clamp(1, MAX_PAGE), before).await?;
        Ok(ConversationDetail { conversation, messages: p.items, next_cursor: p.next.map(|c| c.encode()) })
    }

    pub async fn rename_conversation(
        &self,
        user: &AuthUser,
        id: ConversationId,
        title: &str,
    ) -> Result<Conversation, ChatError> {
        // The same rule as `RenameRequest`'s `Validate` (a short identifier).
        let title = text::normalize_identifier(title, 1, title::MAX_TITLE)
            .map_err(|e| ChatError::Invalid(vec![FieldError::new("/title", e.to_string())]))?;
        Ok(self.store.rename(owner(user), id, &title).await?)
    }

    /// Deletes the conversation and every message in it.
    pub async fn delete_conversation(&self, user: &AuthUser, id: ConversationId) -> Result<(), ChatError> {
        let removed = self.store.delete(owner(user), id).await?;
        tracing::info!(conversation = %id, messages = removed, "conversation deleted");
        Ok(())
    }

    /// Case-insensitive search of the caller's conversation titles and messages, with bounded work
    /// per request (`SEARCH_MAX_ITEMS` items read at most).
    pub async fn search(&self, user: &AuthUser, req: &SearchRequest) -> Result<SearchResults, ChatError> {
        let q = req.q.trim();
        // The same rules as `SearchQuery`'s `Validate`.
        let mut report = Report::new("/query");
        check_search(&mut report, q, req.page.cursor.as_ref());
        report.into_result().map_err(ChatError::Invalid)?;
        let page = self
            .store
            .search(
                owner(user),
                q,
                req.page.limit.clamp(1, MAX_SEARCH_PAGE),
                req.page.cursor,
                self.config.search_max_items,
            )
            .await?;
        Ok(SearchResults { results: page.hits, next_cursor: page.next.map(|c| c.encode()), scanned: page.scanned })
    }
}
