//! The language-model backend: an OpenAI-compatible chat-completions client (OpenAI, Ollama,
//! vLLM, llama.cpp server) that runs the interview and returns the profile as JSON. The model
//! sees only this intake room's own conversation.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::profile::Profile;

#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// e.g. `https://api.openai.com` or `http://127.0.0.1:11434` (Ollama).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub max_tokens: u32,
    /// Older turns are dropped beyond this many characters of history (~4 per token).
    pub history_chars: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// The model's interview turn.
#[derive(Debug, Clone)]
pub struct ModelReply {
    pub reply: String,
    pub profile: Option<Profile>,
    pub completion: Completion,
}

const SYSTEM: &str = "You are the intake assistant of a volunteer support network. Interview the person \
briefly and kindly, asking one or two questions at a time, about: skills and experience, languages, \
availability (days mon..sun; times morning/afternoon/evening/night), location and willingness to travel, \
and causes they care about. Answer ONLY with a JSON object: {\"reply\": <your next message>, \"profile\": \
{\"skills\": [lower-case strings], \"languages\": [ISO 639-1 codes], \"availability\": {\"days\": [...], \
\"times\": [...]}, \"location\": <string or null>, \"willing_to_travel\": <bool or null>, \"causes\": \
[lower-case strings], \"searchable_text\": <one readable paragraph>, \"complete\": <bool>}}. Set complete \
to true once you know enough, and then thank them.";

pub struct OpenAiClient {
    cfg: ModelConfig,
    http: reqwest::Client,
}

impl OpenAiClient {
    pub fn new(cfg: ModelConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .unwrap_or_default();
        Self { cfg, http }
    }

    /// The messages sent: the system prompt, then as much recent history as the budget allows
    /// (the newest turn always).
    pub fn messages(&self, system: &str, history: &[Turn]) -> Vec<Value> {
        let mut kept = Vec::new();
        let mut used = system.len();
        for t in history.iter().rev() {
            used += t.content.len();
            if used > self.cfg.history_chars && !kept.is_empty() {
                break;
            }
            kept.push(json!({ "role": t.role, "content": t.content }));
        }
        kept.reverse();
        let mut out = vec![json!({ "role": "system", "content": system })];
        out.extend(kept);
        out
    }

    /// The next interview turn: the reply and the profile so far.
    pub async fn next(&self, history: &[Turn]) -> Result<ModelReply, String> {
        let c = self.complete(SYSTEM, history, true).await?;
        let inner: Value = serde_json::from_str(&c.text)
            .map_err(|_| "the model did not answer with JSON".to_owned())?;
        let reply = inner["reply"]
            .as_str()
            .ok_or("no reply in the model's JSON")?
            .to_owned();
        let profile = serde_json::from_value::<Profile>(inner["profile"].clone()).ok();
        Ok(ModelReply {
            reply,
            profile,
            completion: c,
        })
    }

    /// One chat completion (as JSON when `json`); a failed or timed-out call is retried once
    /// after a short pause.
    pub async fn complete(
        &self,
        system: &str,
        history: &[Turn],
        json: bool,
    ) -> Result<Completion, String> {
        let mut body = json!({
            "model": self.cfg.model,
            "messages": self.messages(system, history),
            "max_tokens": self.cfg.max_tokens,
            "temperature": 0.2,
        });
        if json {
            body["response_format"] = json!({ "type": "json_object" });
        }
        let url = format!(
            "{}/v1/chat/completions",
            self.cfg.base_url.trim_end_matches('/')
        );
        let mut last_err = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut rb = self.http.post(&url).json(&body);
            if let Some(k) = &self.cfg.api_key {
                rb = rb.bearer_auth(k);
            }
            match rb.send().await {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await.map_err(|e| e.to_string())?;
                    return parse(&v, &self.cfg.model);
                }
                Ok(r) => last_err = format!("model answered {}", r.status()),
                Err(e) => {
                    last_err = if e.is_timeout() {
                        "model timed out".into()
                    } else {
                        e.to_string()
                    }
                }
            }
        }
        Err(last_err)
    }
}

/// A model's answer text with what it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

fn parse(v: &Value, default_model: &str) -> Result<Completion, String> {
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .ok_or("no message in the model's answer")?
        .trim()
        .to_owned();
    if text.is_empty() {
        return Err("the model answered nothing".into());
    }
    Ok(Completion {
        text,
        model: v["model"].as_str().unwrap_or(default_model).to_owned(),
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_answers_parse() {
        let c = OpenAiClient::new(ModelConfig {
            base_url: "http://x".into(),
            model: "m".into(),
            api_key: None,
            timeout: Duration::from_secs(1),
            max_tokens: 100,
            history_chars: 10,
        });
        let h: Vec<Turn> = (0..5)
            .map(|i| Turn {
                role: "user".into(),
                content: format!("message {i}"),
            })
            .collect();
        let msgs = c.messages("sys", &h);
        assert_eq!(msgs[0]["role"], "system");
        assert_eq!(msgs.len(), 2, "only the newest turn fits the budget");
        assert_eq!(msgs[1]["content"], "message 4");
        let answer = json!({"model": "m2", "usage": {"prompt_tokens": 12, "completion_tokens": 5},
            "choices": [{"message": {"content": "{\"reply\": \"Which languages?\", \"profile\": {\"skills\": [\"legal\"], \"languages\": [], \"availability\": {\"days\": [], \"times\": []}, \"location\": null, \"willing_to_travel\": null, \"causes\": [], \"searchable_text\": \"\", \"complete\": false}}"}}]});
        let r = parse(&answer, "m").unwrap();
        assert_eq!(
            (r.model.as_str(), r.prompt_tokens, r.completion_tokens),
            ("m2", 12, 5)
        );
        let inner: Value = serde_json::from_str(&r.text).unwrap();
        assert_eq!(inner["reply"], "Which languages?");
        assert!(parse(&json!({"choices": [{"message": {"content": " "}}]}), "m").is_err());
        assert!(parse(&json!({"choices": []}), "m").is_err());
    }
}
