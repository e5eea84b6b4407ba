//! The bot's own settings: the `[intake]` table of its TOML file (the rest is the runtime's),
//! with the model's secrets and test overrides taken from the environment.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use crate::model::ModelConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// Answers after which a volunteer interview ends even with gaps: a backstop, since the
    /// interviewer asks each question at most twice and normally finishes sooner.
    pub max_exchanges: u32,
    /// How long a group-room answer is reused for the same question.
    pub cache_ttl_s: u64,
    /// Questions one person may ask in a minute, across rooms.
    pub user_questions_per_minute: u32,
    /// Questions a room may ask in a minute.
    pub room_questions_per_minute: u32,
    /// Room messages read as context for a group-room answer.
    pub history_messages: u32,
    /// Bound on what is sent to the model: system prompt plus history, in tokens (~4 chars).
    pub prompt_token_budget: u32,
    /// The OpenAI-compatible model; the offline interviewer when absent.
    pub model: Option<ModelSection>,
    /// Texter intake questions per SMS program (by the bridge's program ID).
    pub programs: BTreeMap<String, ProgramIntake>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_exchanges: 8,
            cache_ttl_s: 600,
            user_questions_per_minute: 5,
            room_questions_per_minute: 20,
            history_messages: 30,
            prompt_token_budget: 3000,
            model: None,
            programs: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// e.g. `https://api.openai.com`, `http://127.0.0.1:11434` (Ollama).
    pub base_url: String,
    pub model: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_timeout_ms() -> u64 {
    20_000
}

fn default_max_tokens() -> u32 {
    400
}

/// What a program asks a texter before a responder picks the conversation up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramIntake {
    /// Sent before the first question.
    #[serde(default)]
    pub intro: Option<String>,
    pub questions: Vec<String>,
    /// Sent after the last answer.
    #[serde(default = "default_closing")]
    pub closing: String,
}

fn default_closing() -> String {
    "Thank you. A responder will be with you as soon as possible.".into()
}

fn env<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}: cannot parse {v:?}")),
        _ => Ok(None),
    }
}

impl IntakeConfig {
    /// Applies the environment: `INTAKE_MAX_EXCHANGES`, `INTAKE_MODEL_BASE_URL`,
    /// `INTAKE_MODEL`, `INTAKE_MODEL_TIMEOUT_MS`, `INTAKE_MODEL_MAX_TOKENS` override the file.
    pub fn apply_env(&mut self) -> Result<(), String> {
        if let Some(n) = env("INTAKE_MAX_EXCHANGES")? {
            self.max_exchanges = n;
        }
        if let Some(base_url) = env::<String>("INTAKE_MODEL_BASE_URL")? {
            let m = self.model.get_or_insert(ModelSection {
                base_url: String::new(),
                model: "gpt-4o-mini".into(),
                timeout_ms: default_timeout_ms(),
                max_tokens: default_max_tokens(),
            });
            m.base_url = base_url;
        }
        if let Some(m) = self.model.as_mut() {
            if let Some(v) = env("INTAKE_MODEL")? {
                m.model = v;
            }
            if let Some(v) = env("INTAKE_MODEL_TIMEOUT_MS")? {
                m.timeout_ms = v;
            }
            if let Some(v) = env("INTAKE_MODEL_MAX_TOKENS")? {
                m.max_tokens = v;
            }
        }
        self.validate()
    }

    fn validate(&self) -> Result<(), String> {
        for (id, p) in &self.programs {
            if p.questions.is_empty() {
                return Err(format!("[intake.programs.{id}]: questions is empty"));
            }
        }
        if self.max_exchanges == 0 {
            return Err("[intake]: max_exchanges must be at least 1".into());
        }
        Ok(())
    }

    /// The model client's settings; the API key only ever comes from `INTAKE_MODEL_API_KEY`.
    pub fn model_config(&self) -> Option<ModelConfig> {
        self.model.as_ref().map(|m| ModelConfig {
            base_url: m.base_url.clone(),
            model: m.model.clone(),
            api_key: std::env::var("INTAKE_MODEL_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeout: Duration::from_millis(m.timeout_ms),
            max_tokens: m.max_tokens,
            history_chars: self.prompt_token_budget as usize * 4,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_parse_and_are_checked() {
        let c: IntakeConfig = toml::from_str(
            "cache_ttl_s = 60\n[model]\nbase_url = \"http://127.0.0.1:11434\"\nmodel = \"llama3\"\n\
             [programs.crisis]\nquestions = [\"How old are you?\"]\n",
        )
        .unwrap();
        assert_eq!(c.cache_ttl_s, 60);
        assert_eq!(c.max_exchanges, 8);
        assert_eq!(c.model.as_ref().unwrap().timeout_ms, 20_000);
        assert_eq!(c.programs["crisis"].questions.len(), 1);
        assert!(c.programs["crisis"].closing.starts_with("Thank you"));
        assert!(toml::from_str::<IntakeConfig>("cache_ttl = 1").is_err());
        let empty: IntakeConfig = toml::from_str("[programs.crisis]\nquestions = []\n").unwrap();
        assert!(empty.validate().unwrap_err().contains("programs.crisis"));
    }
}
