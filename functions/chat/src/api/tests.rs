//! The API's rules, and the documented schemas checked against them (what a schema accepts, the
//! validation accepts, and the other way round).

use super::*;
use crate::modes::Mode;
use crate::store::cursor::Cursor;
use crate::store::ids::{ConversationId, MessageId};
use crate::title;
use baatcheet_shared::ApiError;
use baatcheet_shared::validation::parse_query;
use baatcheet_shared::validation::{Validate, validate};
use proptest::prelude::*;
use serde_json::json;
use utoipa::{IntoParams, PartialSchema};

fn req(v: serde_json::Value) -> Result<CompletionRequest, serde_json::Error> {
    serde_json::from_value(v)
}

fn pointers<T: Validate>(v: T, base: &str) -> Vec<String> {
    match validate(v, base) {
        Err(ApiError::Validation(e)) => e.into_iter().map(|f| f.pointer).collect(),
        Err(other) => panic!("{other:?}"),
        Ok(_) => Vec::new(),
    }
}

#[test]
fn defaults() {
    let r = validate(req(json!({"message": "salaam"})).unwrap(), "").unwrap();
    let (input, stream) = r.into_input();
    assert!(stream);
    assert_eq!(input, CompletionInput::new("salaam"));
    let r = validate(req(json!({"message": "x", "temperature": 0, "stream": false})).unwrap(), "").unwrap();
    let (input, stream) = r.into_input();
    assert!(!stream);
    assert_eq!(input.generation.temperature, Some(0.0));
    let r = validate(req(json!({"message": "x", "system_prompt": "  "})).unwrap(), "").unwrap();
    assert_eq!(r.system_prompt, None, "a blank system prompt is none");
}

#[test]
fn every_bad_field_is_named() {
    let r = req(json!({
        "message": "   ",
        "system_prompt": "p".repeat(4001),
        "temperature": 2.5,
        "max_tokens": 0,
        "model": "",
        "attachments": ["ftp://plain.example/a.png", {"url": "javascript:alert(1)"}, "https://ok.example/a.png",
                        "data:image/png;base64,AAAA", format!("https://a.example/{}", "x".repeat(3000))]
    }))
    .unwrap();
    let p = pointers(r, "");
    assert_eq!(
        p,
        [
            "/message",
            "/system_prompt",
            "/model",
            "/temperature",
            "/max_tokens",
            "/attachments/0",
            "/attachments/1/url",
            "/attachments/4"
        ]
    );
}

#[test]
fn message_length_is_counted_in_characters_and_content_is_kept() {
    let urdu = "ب".repeat(MAX_MESSAGE_CHARS); // 2 bytes each: over 32,000 bytes, exactly 32,000 chars
    assert!(validate(req(json!({ "message": urdu })).unwrap(), "").is_ok());
    let long = "a".repeat(MAX_MESSAGE_CHARS + 1);
    assert!(validate(req(json!({ "message": long })).unwrap(), "").is_err());
    let code = "  <script>alert(1)</script>\n\t";
    assert_eq!(validate(req(json!({ "message": code })).unwrap(), "").unwrap().message, code);
    assert_eq!(pointers(req(json!({"message": "bell\u{7}"})).unwrap(), ""), ["/message"]);
}

#[test]
fn strict_shapes() {
    assert!(req(json!({"message": "x", "extra": 1})).is_err());
    assert!(req(json!({"message": "x", "mode": "admin"})).is_err());
    assert!(req(json!({"message": "x", "conversation_id": "not-an-id"})).is_err());
    assert!(req(json!({"message": "x", "max_tokens": -1})).is_err());
    assert!(req(json!({"message": 5})).is_err());
}

#[test]
fn page_and_search_queries() {
    assert_eq!(parse_query::<PageQuery>("cursor=junk").unwrap_err().status(), 422);
    assert_eq!(pointers(parse_query::<PageQuery>("limit=101").unwrap(), "/query"), ["/query/limit"]);
    assert_eq!(parse_query::<PageQuery>("").unwrap().page(20), PageRequest::first(20));
    let c = Cursor::Conversations(ConversationId::new());
    let q = parse_query::<PageQuery>(&format!("limit=100&cursor={}", c.encode())).unwrap();
    assert_eq!(q.page(20), PageRequest { limit: 100, cursor: Some(c) });
    let s = validate(parse_query::<SearchQuery>("q=%20%20chai%20%20").unwrap(), "/query").unwrap().into_request();
    assert_eq!((s.q.as_str(), s.page.limit), ("chai", 20));
    assert_eq!(pointers(parse_query::<SearchQuery>("q=+").unwrap(), "/query"), ["/query/q"]);
    assert_eq!(pointers(parse_query::<SearchQuery>("q=x&limit=51").unwrap(), "/query"), ["/query/limit"]);
    let q = format!("q=x&cursor={}", c.encode());
    assert_eq!(pointers(parse_query::<SearchQuery>(&q).unwrap(), "/query"), ["/query/cursor"]);
}

#[test]
fn rename_and_transcribe_rules() {
    let r = validate(RenameRequest { title: " New  name ".into() }, "").unwrap();
    assert_eq!(r.title, "New  name");
    assert_eq!(pointers(RenameRequest { title: "".into() }, ""), ["/title"]);
    assert_eq!(pointers(RenameRequest { title: "a\u{202E}b".into() }, ""), ["/title"]);
    assert_eq!(pointers(RenameRequest { title: "y".repeat(81) }, ""), ["/title"]);
    let q = TranscribeQuery { language: Some("urdu".into()), model: Some("a b".into()) };
    assert_eq!(pointers(q, "/query"), ["/query/language", "/query/model"]);
    assert!(valid_language("ur") && valid_language("en") && valid_language("urd"));
    for bad in ["", "u", "UR", "urdu", "e n", "ü"] {
        assert!(!valid_language(bad), "{bad}");
    }
}

// ---- the documented schemas say what the validation enforces ----

fn schema_json<T: PartialSchema>() -> serde_json::Value {
    serde_json::to_value(T::schema()).unwrap()
}

fn params_json<T: IntoParams>() -> serde_json::Value {
    serde_json::to_value(T::into_params(|| None)).unwrap()
}

fn param<'a>(params: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let p = params.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name}"));
    &p["schema"]
}

/// Whether `s` meets a string schema: its pattern and its lengths (in characters).
fn meets(schema: &serde_json::Value, s: &str) -> bool {
    let re = regex::Regex::new(schema["pattern"].as_str().expect("a pattern")).expect("the pattern compiles");
    let n = s.chars().count() as u64;
    re.is_match(s)
        && schema["minLength"].as_u64().is_none_or(|min| n >= min)
        && schema["maxLength"].as_u64().is_none_or(|max| n <= max)
}

#[test]
fn schemas_state_the_limits_the_validation_enforces() {
    let c = schema_json::<CompletionRequest>();
    let p = &c["properties"];
    assert_eq!(c["additionalProperties"], false, "deny_unknown_fields");
    assert_eq!(c["required"], json!(["message"]));
    assert_eq!(p["message"]["maxLength"], MAX_MESSAGE_CHARS);
    assert_eq!(p["message"]["minLength"], 1);
    assert_eq!(p["system_prompt"]["maxLength"], MAX_SYSTEM_PROMPT_CHARS);
    assert_eq!((p["temperature"]["minimum"].as_f64(), p["temperature"]["maximum"].as_f64()), (Some(0.0), Some(2.0)));
    assert_eq!((&p["max_tokens"]["minimum"], &p["max_tokens"]["maximum"]), (&json!(1), &json!(MAX_TOKENS)));
    let images = crate::safety::upload::UploadLimits::default().max_images_per_message;
    assert_eq!(p["attachments"]["maxItems"], images);
    assert_eq!(p["stream"]["default"], true);
    let r = schema_json::<RegenerateRequest>();
    assert_eq!(r["additionalProperties"], false);
    assert_eq!(r["required"], json!(["conversation_id"]));
    assert_eq!(r["properties"]["max_tokens"]["maximum"], MAX_TOKENS);
    assert_eq!(r["properties"]["temperature"]["maximum"].as_f64(), Some(2.0));
    let t = schema_json::<RenameRequest>();
    assert_eq!(t["additionalProperties"], false);
    assert_eq!(t["properties"]["title"]["maxLength"], title::MAX_TITLE);
    let page = params_json::<PageQuery>();
    assert_eq!(param(&page, "limit")["maximum"], MAX_PAGE);
    assert_eq!(param(&page, "cursor")["maxLength"], crate::store::cursor::MAX_CURSOR_LEN);
    let search = params_json::<SearchQuery>();
    assert_eq!(param(&search, "limit")["maximum"], MAX_SEARCH_PAGE);
    assert_eq!(param(&search, "q")["maxLength"], MAX_QUERY_CHARS);
    assert_eq!(param(&search, "cursor")["maxLength"], crate::store::cursor::MAX_CURSOR_LEN);
    let web = &schema_json::<AttachmentUrl>()["oneOf"][0];
    assert_eq!(web["maxLength"], MAX_URL_CHARS);
    let modes: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
    assert_eq!(schema_json::<Mode>()["enum"], json!(modes));
    // A real cursor meets the documented form.
    let cursor = crate::store::cursor::Cursor::SearchContent(ConversationId::new(), MessageId::new()).encode();
    assert!(meets(param(&search, "cursor"), &cursor), "{cursor}");
}

/// Characters the text rules treat specially, and ordinary ones.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\0', '\u{7}', '\u{1c}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}',
            '\u{a0}', '\u{1680}', '\u{2000}', '\u{200a}', '\u{200b}', '\u{200f}', '\u{2028}', '\u{2029}', '\u{202a}',
            '\u{202e}', '\u{202f}', '\u{205f}', '\u{2066}', '\u{2069}', '\u{3000}', '\u{feff}', 'a', 'Z', '5', '<',
            '\u{628}', '\u{301}', '\u{200c}', '\u{200d}', '\u{61c}', '\u{ad}', '\u{fe0f}', '\u{2060}', '\u{640}',
            '\u{64e}',
        ]),
        any::<char>(),
    ]
}

fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..12).prop_map(|v| v.into_iter().collect())
}

/// What the schema of each text field accepts, the field's validation accepts, and the other
/// way round (so generated requests are valid, and the document refuses nothing valid).
fn text_rules_agree(s: &str) {
    let c = schema_json::<CompletionRequest>();
    let message = validate(CompletionRequest { message: s.into(), ..req(json!({"message": "x"})).unwrap() }, "");
    assert_eq!(meets(&c["properties"]["message"], s), message.is_ok(), "message {s:?}");
    let prompt = req(json!({"message": "x", "system_prompt": s})).unwrap();
    assert_eq!(meets(&c["properties"]["system_prompt"], s), validate(prompt, "").is_ok(), "system_prompt {s:?}");
    let t = schema_json::<RenameRequest>();
    let title = validate(RenameRequest { title: s.into() }, "");
    assert_eq!(meets(&t["properties"]["title"], s), title.is_ok(), "title {s:?}");
    let search = params_json::<SearchQuery>();
    let q = validate(SearchQuery { q: s.into(), limit: None, cursor: None }, "/query");
    assert_eq!(meets(param(&search, "q"), s), q.is_ok(), "q {s:?}");
    let transcribe = params_json::<TranscribeQuery>();
    assert_eq!(meets(param(&transcribe, "language"), s), valid_language(s), "language {s:?}");
}

#[test]
fn text_schemas_state_the_text_rules() {
    for s in [
        "",
        " ",
        "a",
        " a ",
        "\ta\n",
        "a\u{7}",
        "\u{85}",
        "a\u{85}",
        "\u{a0}x\u{a0}",
        "\u{202e}",
        "a\u{202e}b",
        "a\nb",
        "a\tb",
        "\u{200f}\u{628}",
        "\u{feff}",
        "\u{200b}",
        "\u{200c}\u{200d}",
        " \u{200f}\u{200c} ",
        "\u{200b}a",
        "a\u{200c}",
        " \u{feff}a\u{200b} ",
        "\u{640}",
        "\u{3000}",
        "<script>alert(1)</script>",
        "ur",
        "urd",
        "urdu",
        "UR",
        "chai  pani",
        "\r\n",
        "Cafe\u{301}",
    ] {
        text_rules_agree(s);
    }
    // The length bounds, at and past them.
    let c = schema_json::<CompletionRequest>();
    for n in [MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS + 1] {
        let s = "\u{628}".repeat(n);
        let ok = validate(req(json!({ "message": s })).unwrap(), "").is_ok();
        assert_eq!(meets(&c["properties"]["message"], &s), ok, "{n}");
    }
    for n in [MAX_SYSTEM_PROMPT_CHARS, MAX_SYSTEM_PROMPT_CHARS + 1] {
        let s = "p".repeat(n);
        let ok = validate(req(json!({"message": "x", "system_prompt": s})).unwrap(), "").is_ok();
        assert_eq!(meets(&c["properties"]["system_prompt"], &s), ok, "{n}");
    }
    for n in [title::MAX_TITLE, title::MAX_TITLE + 1] {
        text_rules_agree(&"y".repeat(n));
    }
    for n in [MAX_QUERY_CHARS, MAX_QUERY_CHARS + 1] {
        text_rules_agree(&"q".repeat(n));
    }
}

proptest::proptest! {
    #[test]
    fn text_schemas_agree_with_the_validation(s in tricky_string()) {
        text_rules_agree(&s);
    }
}
