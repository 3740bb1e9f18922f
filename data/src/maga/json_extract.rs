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
}
