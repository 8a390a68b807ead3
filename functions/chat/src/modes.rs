//! Chat modes: each is a system prompt and a default temperature. BaatCheet's users write Urdu (in
//! Urdu script), Roman Urdu (Urdu in Latin letters) and English, often mixed; every mode answers in
//! the language and script the user wrote in.

use serde::{Deserialize, Serialize};

/// How the assistant answers: `chat` (conversation), `code` (programming), `tutor` (step by
/// step), `creative` (stories and poetry), `math` (worked solutions), `translate` (Urdu, Roman
/// Urdu and English), `summarize`. Every mode answers in the language and script the user wrote in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Chat,
    Code,
    Tutor,
    Creative,
    Math,
    Translate,
    Summarize,
}

/// Shared by every mode: who the assistant is and which language to answer in.
const BASE_PROMPT: &str = "You are BaatCheet, a helpful, honest assistant for people who speak Urdu, English and \
Roman Urdu. Reply in the language and script the user writes in: Urdu script (اردو) when they write Urdu script, \
Roman Urdu (Urdu in Latin letters, e.g. \"aap kaise hain?\") when they write Roman Urdu, and English when they \
write English. If they mix languages, mirror their mix. Be concise unless asked for detail, and say so when you \
are not sure.";

impl Mode {
    pub const ALL: [Mode; 7] =
        [Mode::Chat, Mode::Code, Mode::Tutor, Mode::Creative, Mode::Math, Mode::Translate, Mode::Summarize];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Chat => "chat",
            Mode::Code => "code",
            Mode::Tutor => "tutor",
            Mode::Creative => "creative",
            Mode::Math => "math",
            Mode::Translate => "translate",
            Mode::Summarize => "summarize",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// What this mode adds to the base prompt.
    fn instructions(self) -> &'static str {
        match self {
            Mode::Chat => "Have a friendly, natural conversation.",
            Mode::Code => {
                "You are an expert programmer. Give correct, idiomatic code in fenced code blocks with the \
                 language named, explain briefly, and point out edge cases and security pitfalls. Keep code, \
                 identifiers and error messages in English; explain in the user's language."
            }
            Mode::Tutor => {
                "You are a patient tutor. Explain step by step with simple examples, check understanding with \
                 a short question, and use everyday Pakistani and South Asian examples where they help."
            }
            Mode::Creative => {
                "You are a creative writer: stories, poems (including ghazal and nazm forms), dialogue and ideas. \
                 Be vivid and original while keeping to what the user asked for."
            }
            Mode::Math => {
                "You solve mathematics carefully. Show the working step by step, check the result, and give the \
                 final answer clearly at the end. Use plain-text or LaTeX notation consistently."
            }
            Mode::Translate => {
                "You translate between Urdu (Urdu script), Roman Urdu and English. Translate the user's text \
                 faithfully, keeping meaning, tone and idiom; if the target language is not stated, translate \
                 Urdu or Roman Urdu into English and English into Urdu script. Output only the translation \
                 unless asked to explain."
            }
            Mode::Summarize => {
                "You summarise text. Give the key points as a short list followed by a one-sentence summary, \
                 without adding facts that are not in the text."
            }
        }
    }

    /// The system prompt sent upstream for this mode.
    pub fn system_prompt(self) -> String {
        format!("{BASE_PROMPT}\n\n{}", self.instructions())
    }

    /// Sampling temperature when the request does not give one (a given 0 is kept as 0).
    pub fn default_temperature(self) -> f32 {
        match self {
            Mode::Chat => 0.7,
            Mode::Code => 0.2,
            Mode::Tutor => 0.5,
            Mode::Creative => 1.0,
            Mode::Math => 0.1,
            Mode::Translate => 0.3,
            Mode::Summarize => 0.3,
        }
    }
}

/// Temperature to send: the caller's value when given (including 0), else the mode's default.
pub fn effective_temperature(requested: Option<f32>, mode: Mode) -> f32 {
    requested.unwrap_or_else(|| mode.default_temperature())
}

/// The full system prompt: the mode's, then the caller's own instructions when given.
pub fn system_prompt(mode: Mode, custom: Option<&str>) -> String {
    match custom.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => format!("{}\n\nAdditional instructions from the user:\n{c}", mode.system_prompt()),
        None => mode.system_prompt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_round_trips_and_has_a_prompt_and_sane_temperature() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
            let p = m.system_prompt();
            assert!(p.contains("Roman Urdu") && p.contains("Urdu script"), "{m:?}");
            assert!((0.0..=2.0).contains(&m.default_temperature()));
        }
        assert_eq!(Mode::parse("Chat"), None);
        assert_eq!(Mode::parse("admin"), None);
    }

    #[test]
    fn defaults_differ_by_mode() {
        assert!(Mode::Code.default_temperature() < Mode::Chat.default_temperature());
        assert!(Mode::Creative.default_temperature() > Mode::Chat.default_temperature());
        assert!(Mode::Math.default_temperature() <= 0.2);
    }

    #[test]
    fn zero_temperature_is_honoured() {
        assert_eq!(effective_temperature(Some(0.0), Mode::Creative), 0.0);
        assert_eq!(effective_temperature(None, Mode::Creative), 1.0);
        assert_eq!(effective_temperature(Some(1.5), Mode::Math), 1.5);
    }

    #[test]
    fn custom_prompt_is_appended_not_substituted() {
        let p = system_prompt(Mode::Code, Some("  Answer in Rust only.  "));
        assert!(p.starts_with(&Mode::Code.system_prompt()));
        assert!(p.ends_with("Answer in Rust only."));
        assert_eq!(system_prompt(Mode::Chat, Some("   ")), Mode::Chat.system_prompt());
    }
}
