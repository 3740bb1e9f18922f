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

/// Stage 1: five genre–audience pairs as one flat JSON object (paper's Prompt 3 content). v3
/// shows one worked example as an earlier exchange and puts each text before its task: a
/// 135M tool model answered v1 with no usable JSON and v2 mostly by echoing its placeholders.
pub const GA: Template = Template { version: "ga.v3", text: include_str!("../../prompts/ga.v3.txt") };
/// Stage 2: one rewrite for one pair (Prompt 2 structure).
pub const REFORMULATE: Template =
    Template { version: "reformulate.v1", text: include_str!("../../prompts/reformulate.v1.txt") };
/// The Limited Consistency judge (Prompt 4 structure).
pub const JUDGE: Template = Template { version: "judge.v1", text: include_str!("../../prompts/judge.v1.txt") };

impl Template {
    /// The template's turns with every `{name}` replaced. A line `[user]` or `[assistant]`
    /// starts a turn (so a template can show the model a worked example as an earlier
    /// exchange); text before the first such line is a user turn. Values are substituted
    /// in one pass after the split, so a value containing `{raw_text}` or `[assistant]` is
    /// not expanded again.
    pub fn render(&self, values: &[(&str, &str)]) -> Vec<ChatMessage> {
        let mut turns: Vec<(&str, String)> = vec![("user", String::new())];
        for line in self.text.split_inclusive('\n') {
            match line.trim_end() {
                "[user]" => turns.push(("user", String::new())),
                "[assistant]" => turns.push(("assistant", String::new())),
                _ => turns.last_mut().expect("one turn at least").1.push_str(line),
            }
        }
        turns
            .into_iter()
            .filter(|(_, text)| !text.trim().is_empty())
            .map(|(role, text)| ChatMessage::new(role, substitute(&text, values).trim()))
            .collect()
    }
}

/// `text` with every `{name}` of `values` replaced, in one pass.
fn substitute(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = text;
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
    out
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
            let turns = t.render(&values);
            let last = turns.last().unwrap();
            assert_eq!(last.role, "user");
            assert_eq!(last.content.matches("{raw_text}").count(), names.len(), "{}", t.version);
        }
    }

    #[test]
    fn turn_markers_split_a_template_into_an_exchange() {
        let t = Template { version: "t.v1", text: "[user]\nExample {x}\n[assistant]\n{\"a\": 1}\n[user]\nNow {x}\n" };
        let turns = t.render(&[("x", "[assistant]\nhi")]);
        let roles: Vec<&str> = turns.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(turns[1].content, "{\"a\": 1}", "JSON braces survive");
        assert_eq!(turns[2].content, "Now [assistant]\nhi", "values are not split into turns");
        // Without markers, the whole template is one user turn.
        let one = Template { version: "t.v2", text: "Just {x}.\n" }.render(&[("x", "this")]);
        assert_eq!(one, [ChatMessage::user("Just this.")]);
        // The GA prompt's example answer is a turn of its own, before the chunk's.
        let ga = GA.render(&[("raw_text", "x")]);
        assert_eq!(ga.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(), ["user", "assistant", "user"]);
        assert!(ga[1].content.starts_with("{\"genre_1\": \""));
    }
}
