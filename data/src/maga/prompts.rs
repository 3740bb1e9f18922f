//! The prompt templates, versioned files embedded at build time (`data/prompts/*.vN.txt`).
//!
//! A template's version goes into every row it produced; changing a template's wording means
//! adding a new version file, so old outputs stay attributable.

use crate::llm::ChatMessage;

/// A prompt template with `{name}` placeholders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    /// Recorded in output rows, e.g. `ga.v1`.
    pub version: &'static str,
    pub text: &'static str,
}

/// Stage 1: five genre–audience pairs as one flat JSON object (paper's Prompt 3 content; v2
/// puts the text first and the task after it, which a 135M tool model follows far better).
pub const GA: Template = Template { version: "ga.v2", text: include_str!("../../prompts/ga.v2.txt") };
/// Stage 2: one rewrite for one pair (Prompt 2 structure).
pub const REFORMULATE: Template =
    Template { version: "reformulate.v1", text: include_str!("../../prompts/reformulate.v1.txt") };
/// The Limited Consistency judge (Prompt 4 structure).
pub const JUDGE: Template = Template { version: "judge.v1", text: include_str!("../../prompts/judge.v1.txt") };

impl Template {
    /// The template with every `{name}` replaced, as a single user message. Values are
    /// substituted in one pass, so a value containing `{raw_text}` is not expanded again.
    pub fn render(&self, values: &[(&str, &str)]) -> Vec<ChatMessage> {
        let mut out = String::with_capacity(self.text.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
        let mut rest = self.text;
        'scan: while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            for (name, value) in values {
                if let Some(tail) = after.strip_prefix(name).and_then(|t| t.strip_prefix('}')) {
                    out.push_str(value);
                    rest = tail;
                    continue 'scan;
                }
            }
            out.push('{');
            rest = after;
        }
        out.push_str(rest);
        vec![ChatMessage::user(out.trim_end())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder_once() {
        for (t, names) in [
            (GA, &["raw_text"][..]),
            (REFORMULATE, &["raw_text", "genre", "audience"][..]),
            (JUDGE, &["raw_text", "rewritten_text"][..]),
        ] {
            for n in names {
                assert_eq!(t.text.matches(&format!("{{{n}}}")).count(), 1, "{} {n}", t.version);
            }
            let values: Vec<(&str, &str)> = names.iter().map(|n| (*n, "{raw_text}")).collect();
            let msg = &t.render(&values)[0];
            assert_eq!(msg.role, "user");
            assert_eq!(msg.content.matches("{raw_text}").count(), names.len(), "{}", t.version);
        }
        // JSON braces in the template survive.
        assert!(GA.render(&[("raw_text", "x")])[0].content.contains("{\"genre_1\": \"<genre>\""));
    }
}
