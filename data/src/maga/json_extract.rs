//! Finding JSON objects in a model's free-form answer: code fences, prose around the object,
//! trailing commas (the paper's own judge template has one) are all tolerated.

use serde_json::Value;

/// The top-level `{...}` spans of `text`, in order (brace matching that skips strings).
fn object_spans(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let (mut depth, mut start, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' if depth > 0 => in_string = true,
            b'{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    spans.push(&text[start..=i]);
                }
            }
            _ => {}
        }
    }
    spans
}

/// `text` without commas that directly precede `}` or `]` (outside strings).
fn drop_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' && chars[i + 1..].iter().find(|c| !c.is_whitespace()).is_some_and(|&n| n == '}' || n == ']')
        {
            continue;
        }
        out.push(c);
    }
    out
}

/// Every JSON object in `text` that parses (directly or after dropping trailing commas), in order.
pub fn json_objects(text: &str) -> Vec<Value> {
    object_spans(text)
        .into_iter()
        .filter_map(|span| {
            serde_json::from_str::<Value>(span).ok().or_else(|| serde_json::from_str(&drop_trailing_commas(span)).ok())
        })
        .filter(Value::is_object)
        .collect()
}

/// The JSON string literal starting at byte `start` (a `"`) decoded, and the byte after it;
/// `None` when it never closes or does not decode.
fn string_at(text: &str, start: usize) -> Option<(String, usize)> {
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate().skip(start + 1) {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return serde_json::from_str(&text[start..=i]).ok().map(|s| (s, i + 1)),
            _ => {}
        }
    }
    None
}

/// Every complete `"key": "string"` field in `text`, in order, whether or not its object
/// ever closes: what is left of an answer cut off by the token budget, or of one that ran
/// on into garbage after its last useful field.
pub fn string_fields(text: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find('"') {
        let start = at + offset;
        let Some((key, after_key)) = string_at(text, start) else { break };
        let rest = text[after_key..].trim_start();
        let value = rest.strip_prefix(':').map(str::trim_start).filter(|v| v.starts_with('"'));
        match value.and_then(|v| string_at(text, text.len() - v.len())) {
            Some((value, end)) => {
                fields.push((key, value));
                at = end;
            }
            // Not a key: the string may have been a value; go on after it.
            None => at = after_key,
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_objects_in_prose_fences_and_with_trailing_commas() {
        let text = "Sure! Here it is:\n```json\n{\"A\": {\"analysis\": \"a } brace, \\\"quoted\\\"\", \"score\": 4,},}\n```\nand {broken";
        assert_eq!(json_objects(text), [json!({"A": {"analysis": "a } brace, \"quoted\"", "score": 4}})]);
        assert_eq!(json_objects("{\"a\": 1} then {\"b\": [1, 2,]}"), [json!({"a": 1}), json!({"b": [1, 2]})]);
        assert!(json_objects("no json here").is_empty());
        assert_eq!(drop_trailing_commas("{\"s\": \",}\",}"), "{\"s\": \",}\"}");
    }

    #[test]
    fn string_fields_survive_an_object_that_never_closes() {
        let cut = r#"Sure! {"genre_1": "a \"quoted\" story", "audience_1": "kids", "n": 3, "genre_2": "a rep"#;
        assert_eq!(
            string_fields(cut),
            [("genre_1".to_string(), "a \"quoted\" story".to_string()), ("audience_1".to_string(), "kids".to_string())]
        );
        assert!(string_fields("no fields here").is_empty());
    }
}
