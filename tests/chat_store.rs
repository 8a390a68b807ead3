//! The conversation store against the local DynamoDB: pagination, ownership, deletion (including
//! an interrupted one) and bounded search, through the store and the service.

use aws_sdk_dynamodb::types::AttributeValue;
use baatcheet_shared::ApiError;
use baatcheet_tests::chat::{ChatHarness, fast_config, user};
use chat::ChatConfig;
use chat::api::{PageRequest, SearchRequest};
use chat::modes::Mode;
use chat::store::cursor::Cursor;
use chat::store::ids::{ConversationId, MessageId};
use chat::store::model::{Conversation, Message, MessageStatus, Role, now_rfc3339};
use chat::store::search::Matched;
use chat::store::{ConversationStore, Settings, StoreError};
use std::collections::HashSet;

async fn harness(config: ChatConfig) -> ChatHarness {
    // No provider is needed for the store; an empty list keeps the service buildable.
    ChatHarness::new(serde_json::json!([]), config).await
}

fn message(role: Role, content: &str) -> Message {
    Message {
        id: MessageId::new(),
        role,
        content: content.into(),
        status: MessageStatus::Complete,
        created_at: now_rfc3339(),
        model: None,
        provider: None,
        usage: None,
        attachments: vec![],
    }
}

fn conversation(owner: &str, title: &str) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        user_id: owner.into(),
        title: title.into(),
        mode: Mode::Chat,
        model: Some("m".into()),
        system_prompt: None,
        created_at: now_rfc3339(),
        updated_at: now_rfc3339(),
        message_count: 1,
        deleted: false,
    }
}

fn settings() -> Settings {
    Settings { mode: Mode::Chat, model: "m".into(), system_prompt: None }
}

/// A conversation of `owner` titled `title` whose messages have these contents (alternating roles).
async fn seed(store: &ConversationStore, owner: &str, title: &str, contents: &[&str]) -> ConversationId {
    let c = conversation(owner, title);
    store.create(&c, &message(Role::User, contents[0])).await.unwrap();
    for (i, text) in contents.iter().enumerate().skip(1) {
        let role = if i.is_multiple_of(2) { Role::User } else { Role::Assistant };
        store.append(owner, c.id, &message(role, text), &settings()).await.unwrap();
    }
    c.id
}

#[tokio::test]
async fn pagination_is_stable_and_newest_first() {
    let h = harness(fast_config()).await;
    let store = h.service().store();
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(seed(store, "alice", &format!("chat {i}"), &["hi"]).await);
    }
    for _ in 0..3 {
        seed(store, "bob", "bob's", &["hi"]).await;
    }
    let alice = user("alice");
    let walk = || async {
        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = h.service().list_conversations(&alice, PageRequest { limit: 10, cursor }).await.unwrap();
            pages.push(page.conversations.iter().map(|c| c.id).collect::<Vec<_>>());
            match page.next_cursor {
                Some(c) => cursor = Some(Cursor::decode(&c).unwrap()),
                None => break,
            }
        }
        pages
    };
    let pages = walk().await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let all: Vec<ConversationId> = pages.concat();
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(all, newest_first, "every conversation once, newest first, none of bob's");
    assert_eq!(walk().await, pages, "the same pages again");

    // A cursor of another kind is a field error, not a silent restart.
    let wrong = Cursor::Messages(created[0], MessageId::new());
    let err = h.service().list_conversations(&alice, PageRequest { limit: 10, cursor: Some(wrong) }).await.unwrap_err();
    assert!(matches!(ApiError::from(err), ApiError::Validation(_)));
}

#[tokio::test]
async fn message_pages_are_newest_first_with_a_cursor() {
    let h = harness(fast_config()).await;
    let contents: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = contents.iter().map(String::as_str).collect();
    let id = seed(h.service().store(), "alice", "t", &refs).await;
    let alice = user("alice");
    let mut cursor = None;
    let mut pages = Vec::new();
    loop {
        let d = h.service().get_conversation(&alice, id, PageRequest { limit: 3, cursor }).await.unwrap();
        pages.push(d.messages.iter().map(|m| m.content.clone()).collect::<Vec<_>>());
        match d.next_cursor {
            Some(c) => cursor = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, [vec!["m4", "m5", "m6"], vec!["m1", "m2", "m3"], vec!["m0"]]);
    // A message cursor from another conversation is refused.
    let other = seed(h.service().store(), "alice", "t2", &["x", "y"]).await;
    let foreign = Cursor::Messages(other, MessageId::new());
    let err =
        h.service().get_conversation(&alice, id, PageRequest { limit: 3, cursor: Some(foreign) }).await.unwrap_err();
    assert!(matches!(ApiError::from(err), ApiError::Validation(_)));
}

#[tokio::test]
async fn ownership_is_isolated_at_the_store_level() {
    let h = harness(fast_config()).await;
    let store = h.service().store();
    let id = seed(store, "alice", "alice's secrets", &["my bank pin is 1234", "noted"]).await;
    let not_found = |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    not_found(store.load_recent("bob", id, 10).await.map(|_| ()));
    not_found(store.get("bob", id).await.map(|_| ()));
    not_found(store.messages("bob", id, 10, None).await.map(|_| ()));
    not_found(store.append("bob", id, &message(Role::User, "mine now"), &settings()).await);
    not_found(store.finish("bob", id, &message(Role::Assistant, "x"), None).await);
    not_found(store.rename("bob", id, "pwned").await.map(|_| ()));
    not_found(store.delete("bob", id).await.map(|_| ()));
    assert!(store.list("bob", 100, None).await.unwrap().items.is_empty());
    for q in ["pin", "secrets"] {
        let page = store.search("bob", q, 20, None, 500).await.unwrap();
        assert!(page.hits.is_empty(), "{q}");
    }
    let (c, msgs) = store.load_recent("alice", id, 10).await.unwrap();
    assert_eq!((c.title.as_str(), c.message_count, msgs.len()), ("alice's secrets", 2, 2), "nothing changed");
    // The "mine now" message was never written anywhere.
    let page = store.search("alice", "mine now", 20, None, 500).await.unwrap();
    assert!(page.hits.is_empty());
}

async fn raw_items(h: &ChatHarness, id: ConversationId) -> usize {
    let out = h
        .ctx
        .dynamo
        .query()
        .table_name(&h.stack.env["CONVERSATIONS_TABLE"])
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", "pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("CONV#{id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items().len()
}

/// An UpdateItem on a conversation's own item (`CONV#<id>` / `META`), to put it in a state the
/// store itself would not write.
fn update_conversation_item(
    h: &ChatHarness,
    id: ConversationId,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    h.ctx
        .dynamo
        .update_item()
        .table_name(&h.stack.env["CONVERSATIONS_TABLE"])
        .key("pk", AttributeValue::S(format!("CONV#{id}")))
        .key("sk", AttributeValue::S("META".into()))
}

#[tokio::test]
async fn delete_removes_every_message_and_an_interrupted_delete_leaves_nothing_reachable() {
    let h = harness(fast_config()).await;
    let store = h.service().store();
    let contents: Vec<String> = (0..60).map(|i| format!("delete-me {i}")).collect();
    let refs: Vec<&str> = contents.iter().map(String::as_str).collect();
    let id = seed(store, "alice", "to delete", &refs).await;
    let keep = seed(store, "alice", "to keep", &["delete-me too? no"]).await;
    assert_eq!(raw_items(&h, id).await, 61);

    // An interruption right after the first step of a delete: the conversation is marked deleted
    // and moved out of the user's list to their `UDEL#` index partition, its messages still in the
    // table.
    update_conversation_item(&h, id)
        .update_expression("SET #d = :now, #gpk = :deleting")
        .expression_attribute_names("#d", "deleted_at")
        .expression_attribute_names("#gpk", "gsi1pk")
        .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
        .expression_attribute_values(":deleting", AttributeValue::S("UDEL#alice".into()))
        .send()
        .await
        .unwrap();
    assert!(matches!(store.load_recent("alice", id, 10).await, Err(StoreError::NotFound)));
    assert!(matches!(store.messages("alice", id, 10, None).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.append("alice", id, &message(Role::User, "more"), &settings()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.finish("alice", id, &message(Role::Assistant, "late answer"), None).await,
        Err(StoreError::NotFound)
    ));
    let listed: Vec<_> = store.list("alice", 100, None).await.unwrap().items.into_iter().map(|c| c.id).collect();
    assert_eq!(listed, [keep]);
    let found: Vec<_> = store
        .search("alice", "delete-me", 50, None, 500)
        .await
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.conversation.id)
        .collect();
    assert_eq!(found, [keep], "messages awaiting removal are not searchable");

    // Deleting again resumes and finishes the removal.
    h.service().delete_conversation(&user("alice"), id).await.unwrap();
    assert_eq!(raw_items(&h, id).await, 0, "nothing of the conversation is left");
    let again = h.service().delete_conversation(&user("alice"), id).await.map_err(ApiError::from);
    assert!(matches!(again, Err(ApiError::NotFound(_))));
    assert_eq!(raw_items(&h, keep).await, 2, "the other conversation is untouched");
}

#[tokio::test]
async fn search_is_case_insensitive_and_limited_to_the_callers_conversations() {
    let h = harness(fast_config()).await;
    let store = h.service().store();
    let biryani = seed(store, "alice", "Biryani recipe", &["how long do I cook the rice?", "About 20 minutes."]).await;
    let chai = seed(store, "alice", "Evening", &["Mujhe CHAI ki recipe batao", "Doodh, patti aur cheeni..."]).await;
    let urdu = seed(store, "alice", "اردو", &["چائے کیسے بنتی ہے؟"]).await;
    seed(store, "bob", "chai for bob", &["chai chai chai"]).await;
    let h = &h;
    let search = |q: &str| {
        let q = q.to_string();
        async move {
            h.service()
                .search(&user("alice"), &SearchRequest { q, page: PageRequest::first(20) })
                .await
                .unwrap()
                .results
                .into_iter()
                .map(|r| (r.conversation.id, r.matched, r.snippet))
                .collect::<Vec<_>>()
        }
    };
    let hits = search("chai").await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!((hits[0].0, hits[0].1), (chai, Matched::Content));
    assert!(hits[0].2.contains("CHAI ki recipe"));
    let hits = search("BIRYANI").await;
    assert_eq!(hits.iter().map(|h| (h.0, h.1)).collect::<Vec<_>>(), [(biryani, Matched::Title)]);
    let hits = search("recipe").await;
    let ids: HashSet<_> = hits.iter().map(|h| h.0).collect();
    assert_eq!(ids, HashSet::from([biryani, chai]), "each conversation once");
    assert_eq!(search("چائے").await.iter().map(|h| h.0).collect::<Vec<_>>(), [urdu]);
    assert!(search("nothing like this").await.is_empty());
}

#[tokio::test]
async fn search_work_per_request_is_bounded_and_resumable() {
    let config = ChatConfig { search_max_items: 10, ..fast_config() };
    let h = harness(config).await;
    let store = h.service().store();
    let needle = seed(store, "alice", "old one", &["the word is zarafa", "ok"]).await;
    for i in 0..14 {
        seed(store, "alice", &format!("filler {i}"), &["nothing to see", "still nothing"]).await;
    }
    let alice = user("alice");
    let mut cursor = None;
    let mut pages = 0;
    let mut found = Vec::new();
    loop {
        let page = h
            .service()
            .search(&alice, &SearchRequest { q: "ZARAFA".into(), page: PageRequest { limit: 20, cursor } })
            .await
            .unwrap();
        pages += 1;
        assert!(page.scanned <= 10, "page {pages} read {} items", page.scanned);
        found.extend(page.results.into_iter().map(|r| r.conversation.id));
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
        assert!(pages < 20, "the cursor makes progress");
    }
    assert_eq!(found, [needle]);
    assert!(pages >= 4, "15 titles + 30 messages need several bounded pages, got {pages}");
}

/// The search results for `q` as (conversation, where, snippet, highlighted part of the snippet).
async fn search_as(h: &ChatHarness, owner: &str, q: &str) -> Vec<(ConversationId, Matched, String, String)> {
    h.service()
        .search(&user(owner), &SearchRequest { q: q.into(), page: PageRequest::first(20) })
        .await
        .unwrap_or_else(|e| panic!("search {q:?}: {e:?}"))
        .results
        .into_iter()
        .map(|r| {
            let marked: String =
                r.snippet.chars().skip(r.highlight.start).take(r.highlight.end - r.highlight.start).collect();
            (r.conversation.id, r.matched, r.snippet, marked)
        })
        .collect()
}

#[tokio::test]
async fn search_finds_urdu_roman_urdu_and_english_however_they_are_typed() {
    let h = harness(fast_config()).await;
    let store = h.service().store();
    let o = "urdu-typist";
    let urdu =
        seed(store, o, "Salaam! آپ کیسے ہیں؟", &["آپ کا بہت شکریہ، میں ٹھیک ہوں", "میرا بھائی ۲۰۲۵ میں لاہور آئے گا"])
            .await;
    let roman = seed(store, o, "Gup shup", &["Shukriyaa bhai, main theek hoon", "Aap kese hain? Sab khairiyat?"]).await;
    let english =
        seed(store, o, "Weekend plans", &["Let's meet at the Café on Sunday", "Sure, 10:30 works for me"]).await;
    let other =
        seed(store, o, "Cricket", &["Pakistan ne match jeeta", "کرکٹ کا میچ کل ہے", "Cheeni aur cheese check karo"])
            .await;
    seed(store, "someone-else", "آپ کیسے ہیں", &["shukriya, kaise ho, 2025"]).await;

    let ids = |hits: &[(ConversationId, Matched, String, String)]| hits.iter().map(|h| h.0).collect::<HashSet<_>>();
    for (q, want) in [
        // Urdu as typed on an Arabic keyboard (kaf U+0643, yeh U+064A, heh U+0647), with
        // diacritics, tatweel, joiners and invisible marks, and alef / hamza spellings.
        ("كيسے", vec![urdu]),
        ("کَیسے", vec![urdu]),
        ("کـــیسے", vec![urdu]),
        ("کی\u{200C}سے", vec![urdu]),
        ("\u{200F}کیسے\u{200D}", vec![urdu]),
        ("اپ", vec![urdu]),
        ("شكريه", vec![urdu]),
        ("شُکْرِیَہ", vec![urdu]),
        ("بهائی", vec![urdu]),
        ("آۓ گا", vec![urdu]),
        // Digits of every script.
        ("2025", vec![urdu]),
        ("٢٠٢٥", vec![urdu]),
        ("۲۰۲۵", vec![urdu]),
        ("２０２５", vec![urdu]),
        ("10:30", vec![english]),
        ("۱۰:۳۰", vec![english]),
        // Roman Urdu spellings and case.
        ("salam", vec![urdu]),
        ("SALAAM", vec![urdu]),
        ("shukriya", vec![roman]),
        ("kaise", vec![roman]),
        ("KESE", vec![roman]),
        ("thek", vec![roman]),
        ("mein", vec![roman]),
        ("kaise hein", vec![roman]),
        ("bhai", vec![roman]),
        // English: case and accents.
        ("cafe", vec![english]),
        ("CAFÉ", vec![english]),
        ("sunday", vec![english]),
        ("میچ", vec![other]),
        // Unrelated text is not found.
        ("biryani", vec![]),
        ("chai", vec![]),
        ("چائے", vec![]),
        ("کیسی", vec![]),
        ("3030", vec![]),
        ("ـــ", vec![]),
    ] {
        let hits = search_as(&h, o, q).await;
        assert_eq!(ids(&hits), want.into_iter().collect::<HashSet<_>>(), "{q:?}: {hits:?}");
    }

    // Snippets show the stored text, the highlight on the stored spelling.
    let hits = search_as(&h, o, "كيسے").await;
    assert_eq!(hits[0].1, Matched::Title);
    assert_eq!((hits[0].2.as_str(), hits[0].3.as_str()), ("Salaam! آپ کیسے ہیں؟", "کیسے"));
    let hits = search_as(&h, o, "شكريه").await;
    assert_eq!(
        (hits[0].1, hits[0].2.as_str(), hits[0].3.as_str()),
        (Matched::Content, "آپ کا بہت شکریہ، میں ٹھیک ہوں", "شکریہ")
    );
    assert_eq!(search_as(&h, o, "SHUKRIYA").await[0].3, "Shukriyaa");
    assert_eq!(search_as(&h, o, "kaise").await[0].3, "kese");
    assert_eq!(search_as(&h, o, "٢٠٢٥").await[0].3, "۲۰۲۵");
    assert_eq!(search_as(&h, o, "cafe").await[0].3, "Café");
}

#[tokio::test]
async fn search_snippets_locate_matches_when_the_folded_text_is_shorter_or_longer() {
    let h = harness(fast_config()).await;
    let store = h.service().store();
    let o = "snippets";
    // Before the match: 200 characters that fold to nothing or to less (diacritics, tatweel,
    // ZWNJ), and ligatures that fold to more (ﷲ is four letters, ﻻ two).
    let noise = "بِ\u{200C}ـ".repeat(50);
    let ligatures = "\u{FDF2} \u{FEFB} ".repeat(20);
    let (rahman, rahim, kaise) = ("الرَّحْمٰنِ", "الرَّحِیْمِ", "کَیــسِے");
    let text = format!("{noise}{ligatures}بِسْمِ اللّٰہِ {rahman} {rahim} ـــ آپ {kaise} ہیں؟ {}", "ٹھیک ".repeat(40));
    let id = seed(store, o, "Mixed", &[&text]).await;
    let rahim_without_al: String = rahim.chars().skip(2).collect();
    for (q, marked) in [("رحیم", rahim_without_al.as_str()), ("كيسے", kaise), ("الرحمن", rahman)] {
        let hits = search_as(&h, o, q).await;
        assert_eq!(hits.len(), 1, "{q}");
        let (cid, matched, snippet, got) = &hits[0];
        assert_eq!((*cid, *matched), (id, Matched::Content));
        assert_eq!(got, marked, "{q}: {snippet}");
        // The snippet is the original text around the match (whitespace collapsed), cut on both
        // sides.
        assert!(snippet.starts_with('…') && snippet.ends_with('…'), "{snippet}");
        let inner = snippet.trim_matches('…');
        assert!(text.contains(inner), "{q}: the snippet is a piece of the stored text: {snippet}");
        assert!(inner.contains(marked));
    }
}

#[tokio::test]
async fn search_finds_items_written_before_folding_existed() {
    let h = harness(fast_config()).await;
    let o = "old-items";
    // Items in the shape the store has always written (written here directly, as an older
    // version left them): Arabic-keyboard letters, a decomposed alef madda, diacritics.
    let c = conversation(o, "پرانی گفتگو");
    let m = message(Role::User, "ا\u{0653}پ كيسے ہیں؟ SALAAM bhai");
    let table = &h.stack.env["CONVERSATIONS_TABLE"];
    for item in [c.to_item().unwrap(), m.to_item(c.id, o, None).unwrap()] {
        h.ctx.dynamo.put_item().table_name(table).set_item(Some(item)).send().await.unwrap();
    }
    let hits = search_as(&h, o, "آپ کیسے").await;
    assert_eq!(hits.iter().map(|h| (h.0, h.1)).collect::<Vec<_>>(), [(c.id, Matched::Content)]);
    assert_eq!(hits[0].3, "ا\u{0653}پ كيسے");
    assert_eq!(search_as(&h, o, "salam").await[0].3, "SALAAM");
    assert_eq!(search_as(&h, o, "گفتگو").await[0].1, Matched::Title);
}

#[tokio::test]
async fn search_over_http_returns_the_highlight_and_refuses_blank_queries() {
    let h = harness(fast_config()).await;
    let alice = h.caller("alice").await;
    let id = seed(h.service().store(), alice.id(), "Salaam! آپ کیسے ہیں؟", &["hi"]).await;
    let search = |q: &str| {
        let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("q", q).finish();
        h.get(&format!("/api/v1/conversations/search?{query}"), &alice).send()
    };
    let res = search("  كيسے ").await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let hit = &body["results"][0];
    assert_eq!(hit["conversation"]["id"], id.to_string());
    assert_eq!(hit["snippet"], "Salaam! آپ کیسے ہیں؟");
    assert_eq!(hit["highlight"], serde_json::json!({"start": 11, "end": 15}));
    // Only invisible characters: blank, like only spaces.
    for q in ["\u{200C}\u{200B}", " \u{FEFF} "] {
        let res = search(q).await.unwrap();
        assert_eq!(res.status(), 422, "{q:?}");
    }
}

/// A stored item with a garbled attribute (a count written as text, by a hand edit or another
/// writer) is a 500 problem that shows nothing of the item, never a count read as 0.
#[tokio::test]
async fn a_garbled_item_is_a_server_error_not_a_default() {
    let h = harness(fast_config()).await;
    let alice = h.caller("alice").await;
    let id = seed(h.service().store(), alice.id(), "private title", &["hi"]).await;
    update_conversation_item(&h, id)
        .update_expression("SET #n = :n")
        .expression_attribute_names("#n", "message_count")
        .expression_attribute_values(":n", AttributeValue::S("two hundred".into()))
        .send()
        .await
        .unwrap();
    for path in [format!("/api/v1/conversations/{id}"), "/api/v1/conversations".into()] {
        let res = h.get(&path, &alice).send().await.unwrap();
        assert_eq!(res.status(), 500, "{path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json", "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("private title") && !body.contains("two hundred"), "{path}: {body}");
    }
    match h.service().store().get(alice.id(), id).await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("`message_count`") && !why.contains("two"), "{why}"),
        other => panic!("{other:?}"),
    }
}
