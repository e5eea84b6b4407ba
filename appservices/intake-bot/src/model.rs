//! The language-model backend: an OpenAI-compatible chat-completions client (OpenAI, Ollama,
//! vLLM, llama.cpp server) that runs the interview and returns the profile as JSON. The model
//! sees only this intake room's own conversation.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{profile::Profile, understand::normalise};

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

/// The model's interview turn, its profile already brought to the offline contract.
#[derive(Debug, Clone)]
pub struct ModelReply {
    pub reply: String,
    pub profile: Profile,
    pub completion: Completion,
}

/// The interview prompt: the same questions, policy and profile contract as the offline
/// interviewer (`interview.rs`), so either can take over from the other mid-conversation.
const SYSTEM: &str = "You are the intake assistant of a volunteer support network. Interview the person \
kindly, one or two questions at a time, about: skills and experience, languages, availability, where they \
are based and whether they would travel, and the causes they care about. Read every answer together with \
the question it answers and everything said before; apply corrections in the order given (\"actually \
only weekends\", \"drop French\"). Ask only about what is still unknown, never ask the same question \
twice (rephrase once, then move on), stop asking when they say that's all, finish with a short summary \
they can correct, and keep taking corrections after that. Reply in the language the person writes in. \
Answer ONLY with a JSON object: {\"reply\": <your next message>, \"profile\": {\"skills\": [lower-case \
phrases as the person said them, e.g. \"welder\", \"dog walking\"; use legal, medical, driving, translation, \
counseling, cooking, teaching, tech, accounting, childcare, construction or admin for those], \"languages\": \
[ISO 639-1 codes], \"availability\": {\"days\": [mon, tue, wed, thu, fri, sat, sun; weekends are sat and \
sun], \"times\": [morning, afternoon, evening, night; \"after work\" is evening]}, \"location\": <the place \
they are now, as they wrote it, or null; not where they are from>, \"willing_to_travel\": <true, false or \
null>, \"causes\": [lower-case phrases as said, e.g. \"wildfire relief\"; use housing, immigration, mental \
health, domestic violence, food security, youth, elders, lgbtq+, addiction recovery, environment, education \
or veterans for those], \"complete\": <true once every question is answered or declined>}}.";

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

    /// The next interview turn: the reply and the profile so far. Tried once: a person is
    /// waiting, and the offline interviewer answers instead when this fails.
    pub async fn next(&self, history: &[Turn]) -> Result<ModelReply, String> {
        let c = self.request(SYSTEM, history, true, 1).await?;
        let (reply, profile) = interview_answer(&c.text)?;
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
        self.request(system, history, json, 2).await
    }

    async fn request(
        &self,
        system: &str,
        history: &[Turn],
        json: bool,
        attempts: u32,
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
        for attempt in 0..attempts {
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

/// The reply and profile in an interview answer: JSON, perhaps inside a code fence or
/// between sentences, with a non-empty reply and a profile object.
fn interview_answer(text: &str) -> Result<(String, Profile), String> {
    let start = text.find('{').ok_or("the model did not answer with JSON")?;
    let end = text
        .rfind('}')
        .ok_or("the model did not answer with JSON")?;
    let inner: Value = serde_json::from_str(text.get(start..=end).unwrap_or_default())
        .map_err(|_| "the model did not answer with JSON".to_owned())?;
    let reply = inner["reply"]
        .as_str()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or("no reply in the model's JSON")?
        .to_owned();
    let profile = normalise::profile(&inner["profile"]).ok_or("no profile in the model's JSON")?;
    Ok((reply, profile))
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

        // Interview answers: fenced or wrapped JSON is read and normalised; anything
        // without a reply and a profile object is refused (the offline interviewer answers).
        let fenced = "Sure!\n```json\n{\"reply\": \"¿Qué idiomas hablas?\", \"profile\": {\"skills\": [\"Nurse\"], \"languages\": [\"Spanish\"], \"availability\": {\"days\": [\"weekends\"], \"times\": []}, \"complete\": false}}\n```";
        let (reply, p) = interview_answer(fenced).unwrap();
        assert_eq!(reply, "¿Qué idiomas hablas?");
        assert_eq!(
            (p.skills, p.languages),
            (vec!["medical".to_owned()], vec!["es".to_owned()])
        );
        assert_eq!(p.availability.days, vec!["sat", "sun"]);
        for bad in [
            "I think you should ask about languages.",
            "{\"reply\": 5, \"profile\": {}}",
            "{\"reply\": \"Hi\"}",
            "{\"reply\": \"Hi\", \"profile\": \"none\"}",
            "{\"reply\": \"  \", \"profile\": {}}",
            "{\"reply\": \"Hi\", \"profile\": {",
        ] {
            assert!(interview_answer(bad).is_err(), "{bad}");
        }
        assert!(parse(&json!({"choices": []}), "m").is_err());
    }
}
