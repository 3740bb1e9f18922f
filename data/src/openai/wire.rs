//! The JSON of `/v1/chat/completions` and `/v1/models`, the parts both sides use.

use serde_json::{json, Value};

use crate::llm::{ChatMessage, ChatRequest, ChatResponse, FinishReason, Sampling};

/// The request body for `model`.
pub fn request_body(model: &str, req: &ChatRequest) -> Value {
    let s = &req.sampling;
    let messages: Vec<Value> = req.messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens,
        "seed": s.seed,
    });
    // top_k is an extension (vLLM, llama.cpp, SGLang accept it; OpenAI does not): send it only when used.
    if s.top_k > 0 {
        body["top_k"] = json!(s.top_k);
    }
    body
}

/// A message's text: a string, or an array of `{"type": "text", "text": ...}` parts.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|t| t.join("")),
        _ => None,
    }
}

fn number<T>(
    body: &Value,
    key: &str,
    parse: impl Fn(&Value) -> Option<T>,
    ok: impl Fn(&T) -> bool,
    what: &str,
) -> Result<Option<T>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse(v).filter(|x| ok(x)).map(Some).ok_or_else(|| format!("'{key}' must be {what}, got {v}")),
    }
}

/// Parses and validates a request body; the error says which field is wrong.
pub fn parse_request(body: &Value, default_max_tokens: usize) -> Result<ChatRequest, String> {
    let obj = body.as_object().ok_or("the request body must be a JSON object")?;
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err("'stream': true is not supported".into());
    }
    number(body, "n", Value::as_u64, |&n| n == 1, "1 (one choice per request)")?;
    let list = obj.get("messages").and_then(Value::as_array).ok_or("'messages' must be an array")?;
    if list.is_empty() {
        return Err("'messages' must not be empty".into());
    }
    let mut messages = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or(format!("messages[{i}].role must be a string"))?;
        if !matches!(role, "system" | "user" | "assistant") {
            return Err(format!("messages[{i}].role {role:?} is not system, user or assistant"));
        }
        let content = m
            .get("content")
            .and_then(content_text)
            .ok_or(format!("messages[{i}].content must be a string or text parts"))?;
        messages.push(ChatMessage::new(role, content));
    }
    let f32_of = |v: &Value| v.as_f64().map(|x| x as f32);
    let temperature =
        number(body, "temperature", f32_of, |t| (0.0..=2.0).contains(t), "a number in [0, 2]")?.unwrap_or(1.0);
    let top_p = number(body, "top_p", f32_of, |p| *p > 0.0 && *p <= 1.0, "a number in (0, 1]")?.unwrap_or(1.0);
    let top_k = number(body, "top_k", Value::as_u64, |_| true, "a non-negative integer")?.unwrap_or(0) as usize;
    let max_tokens = match number(body, "max_completion_tokens", Value::as_u64, |&n| n >= 1, "a positive integer")? {
        Some(n) => Some(n),
        None => number(body, "max_tokens", Value::as_u64, |&n| n >= 1, "a positive integer")?,
    };
    let seed = number(body, "seed", Value::as_u64, |_| true, "a non-negative integer")?.unwrap_or(0);
    let max_tokens = max_tokens.map_or(default_max_tokens, |n| n as usize);
    Ok(ChatRequest { messages, sampling: Sampling { temperature, top_k, top_p, max_tokens, seed } })
}

/// The response body for one completion.
pub fn response_body(id: u64, model: &str, created: u64, r: &ChatResponse) -> Value {
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": r.text},
            "finish_reason": r.finish.as_str(),
        }],
        "usage": {
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "total_tokens": r.prompt_tokens + r.completion_tokens,
        },
    })
}

/// Reads a completion from a response body.
pub fn parse_response(body: &Value) -> Result<ChatResponse, String> {
    let choice = body.get("choices").and_then(|c| c.get(0)).ok_or("no choices[0] in the response")?;
    let text = choice.get("message").and_then(|m| m.get("content")).and_then(content_text).unwrap_or_default();
    let finish = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("length") => FinishReason::Length,
        Some("stop") | Some("eos") | None => FinishReason::Stop,
        Some(other) => return Err(format!("unexpected finish_reason {other:?}")),
    };
    let usage = |k: &str| body.get("usage").and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0) as usize;
    Ok(ChatResponse {
        text,
        finish,
        prompt_tokens: usage("prompt_tokens"),
        completion_tokens: usage("completion_tokens"),
    })
}

/// The `/v1/models` body.
pub fn models_body(model: &str) -> Value {
    json!({"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "vwn"}]})
}

/// An OpenAI-style error body.
pub fn error_body(message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_fields_are_named() {
        let req = ChatRequest {
            messages: vec![ChatMessage::system("be brief"), ChatMessage::user("hi")],
            sampling: Sampling { temperature: 0.5, top_k: 40, top_p: 0.9, max_tokens: 7, seed: 3 },
        };
        assert_eq!(parse_request(&request_body("m", &req), 100).unwrap(), req);
        let minimal = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]});
        let parsed = parse_request(&minimal, 100).unwrap();
        assert_eq!(
            (parsed.messages[0].content.as_str(), parsed.sampling.max_tokens, parsed.sampling.temperature),
            ("ab", 100, 1.0)
        );
        for (body, needle) in [
            (json!([]), "JSON object"),
            (json!({"messages": []}), "must not be empty"),
            (json!({"messages": [{"role": "tool", "content": "x"}]}), "messages[0].role"),
            (json!({"messages": [{"role": "user", "content": "x"}], "temperature": 3}), "'temperature'"),
            (json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}), "'max_tokens'"),
            (json!({"messages": [{"role": "user", "content": "x"}], "stream": true}), "stream"),
            (json!({"messages": [{"role": "user", "content": "x"}], "n": 2}), "'n'"),
        ] {
            let e = parse_request(&body, 1).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let r =
            ChatResponse { text: "ok".into(), finish: FinishReason::Length, prompt_tokens: 5, completion_tokens: 2 };
        assert_eq!(parse_response(&response_body(1, "m", 0, &r)).unwrap(), r);
        assert!(parse_response(&json!({"choices": []})).is_err());
    }
}
