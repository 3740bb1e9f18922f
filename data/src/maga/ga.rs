//! `ga`: five (genre, audience) pairs per chunk from one generation (spec §1.3).
//!
//! The answer is searched for JSON (flat `genre_k`/`audience_k` keys as the paper's template
//! asks, or an array of `{genre, audience}` objects); pairs must be non-empty and distinct
//! (near-identical pairs, word Jaccard ≥ 0.8, count once). A chunk whose answer yields fewer
//! than `min_pairs` is retried with a new seed, then rejected with a reason code.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::llm::{FinishReason, Sampling, TextGenerator};
use crate::maga::generation::{generate_checked, Failure, Job};
use crate::maga::json_extract::{json_objects, string_fields};
use crate::maga::prompts::GA;
use crate::maga::schema::{ChunkRow, GaPair, GaRow, Reject};
use crate::maga::stage::Outcome;
use crate::maga::text::{jaccard, shingles};

/// Pairs asked for per chunk.
pub const PAIRS: usize = 5;

#[derive(Clone, Debug, PartialEq)]
pub struct GaConfig {
    pub sampling: Sampling,
    pub retries: usize,
    /// Fewest valid distinct pairs accepted after the last retry (1..=5).
    pub min_pairs: usize,
}

impl Default for GaConfig {
    fn default() -> Self {
        GaConfig {
            sampling: Sampling { temperature: 0.7, top_k: 0, top_p: 0.9, max_tokens: 400, seed: 0 },
            retries: 2,
            min_pairs: PAIRS,
        }
    }
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// The pairs an object spells out, in order, before validation.
fn raw_pairs(obj: &Map<String, Value>) -> Vec<GaPair> {
    let numbered: Vec<GaPair> = (1..=9)
        .map_while(|k| {
            let (g, a) = (field(obj, &format!("genre_{k}")), field(obj, &format!("audience_{k}")));
            (g.is_some() || a.is_some()).then(|| GaPair { genre: text_of(g), audience: text_of(a) })
        })
        .collect();
    if !numbered.is_empty() {
        return numbered;
    }
    let list = obj.values().find_map(|v| v.as_array().filter(|a| a.iter().any(Value::is_object)));
    list.map(|items| {
        items
            .iter()
            .filter_map(Value::as_object)
            .map(|o| GaPair { genre: text_of(field(o, "genre")), audience: text_of(field(o, "audience")) })
            .collect()
    })
    .unwrap_or_default()
}

/// Template text echoed back instead of a description (`<genre_1>`, `Genre 1`, `The 2nd
/// audience`, `...`): small tool models do this often, and such pairs must not pass.
fn is_placeholder(value: &str) -> bool {
    const FILLER: [&str; 16] = [
        "the",
        "a",
        "your",
        "own",
        "description",
        "here",
        "1st",
        "2nd",
        "3rd",
        "4th",
        "5th",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
    ];
    value.contains('<')
        || value.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).all(|w| {
            let w = w.to_lowercase();
            w.starts_with("genre")
                || w.starts_with("audience")
                || w.chars().all(|c| c.is_ascii_digit())
                || FILLER.contains(&w.as_str())
        })
}

/// The valid, distinct pairs of `pairs` (at most [`PAIRS`]), and how many were dropped as
/// empty or placeholder text, and as duplicates.
fn distinct_pairs(pairs: Vec<GaPair>) -> (Vec<GaPair>, usize, usize) {
    let (mut kept, mut empty, mut duplicate) = (Vec::<GaPair>::new(), 0, 0);
    let mut seen: Vec<HashSet<u64>> = Vec::new();
    for p in pairs {
        if is_placeholder(&p.genre) || is_placeholder(&p.audience) {
            empty += 1;
            continue;
        }
        let sh = shingles(&format!("{} | {}", p.genre, p.audience), 1);
        if seen.iter().any(|s| jaccard(s, &sh) >= 0.8) {
            duplicate += 1;
            continue;
        }
        seen.push(sh);
        kept.push(p);
    }
    kept.truncate(PAIRS);
    (kept, empty, duplicate)
}

/// Parses a GA answer into at least `min_pairs` valid distinct pairs, or says why not.
///
/// Without a complete JSON object, the answer's complete `"key": "value"` fields (the first
/// of each key) stand in for one: small models often write the five pairs and then run on
/// past them instead of closing the object, until the token budget cuts them off.
pub fn parse_pairs(answer: &str, min_pairs: usize) -> Result<Vec<GaPair>, Failure> {
    let mut objects: Vec<Map<String, Value>> = json_objects(answer)
        .into_iter()
        .map(|o| match o {
            Value::Object(map) => map,
            _ => unreachable!("json_objects returns objects only"),
        })
        .collect();
    if objects.is_empty() {
        let mut fields = Map::new();
        for (key, value) in string_fields(answer) {
            fields.entry(key).or_insert(Value::String(value));
        }
        if fields.is_empty() {
            return Err(Failure::new("ga_no_json", "no JSON object in the answer", answer));
        }
        objects.push(fields);
    }
    // The object with the most usable pairs; the later one on ties (models restate).
    let best = objects
        .iter()
        .map(|o| distinct_pairs(raw_pairs(o)))
        .enumerate()
        .max_by_key(|(i, (kept, _, _))| (kept.len(), *i))
        .map(|(_, b)| b)
        .expect("at least one object");
    let (pairs, empty, duplicate) = best;
    if pairs.len() < min_pairs.max(1) {
        let detail = format!(
            "{} valid distinct pairs, {min_pairs} needed ({empty} with an empty or placeholder genre or audience, {duplicate} duplicates)",
            pairs.len()
        );
        return Err(Failure::new("ga_too_few_pairs", detail, answer));
    }
    Ok(pairs)
}

/// Generates pairs for a batch of chunks.
pub fn run_batch(generator: &dyn TextGenerator, cfg: &GaConfig, chunks: Vec<(String, ChunkRow)>) -> Outcome<GaRow> {
    let jobs: Vec<Job> = chunks
        .iter()
        .map(|(id, c)| Job { key: format!("ga:{id}"), messages: GA.render(&[("raw_text", &c.text)]) })
        .collect();
    let mut out = Outcome::default();
    let check = |_: usize, r: &crate::llm::ChatResponse| {
        parse_pairs(&r.text, cfg.min_pairs).map_err(|f| match r.finish {
            FinishReason::Length => Failure::new("ga_truncated", format!("stopped at max_tokens: {}", f.detail), f.raw),
            FinishReason::Stop => f,
        })
    };
    let results = generate_checked(generator, GA.version, &cfg.sampling, cfg.retries, &jobs, check, &mut out.tokens);
    for ((id, chunk), result) in chunks.into_iter().zip(results) {
        match result {
            Ok(g) => out.outputs.push(GaRow { chunk, pairs: g.value, ga: g.provenance }),
            Err(f) => {
                out.rejects.push(Reject { stage: "ga".into(), reason: f.reason, id, detail: f.detail, record: f.raw })
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(n: usize) -> String {
        let fields: Vec<String> = (1..=n)
            .flat_map(|k| [format!("\"audience_{k}\": \"audience {k} x\""), format!("\"genre_{k}\": \"genre {k} y\"")])
            .collect();
        format!("{{{}}}", fields.join(", "))
    }

    #[test]
    fn parses_the_papers_flat_template_in_prose_and_fences() {
        let answer = format!("Here are the pairs:\n```json\n{}\n```", flat(5));
        let pairs = parse_pairs(&answer, 5).unwrap();
        assert_eq!(pairs.len(), 5);
        assert_eq!(pairs[2], GaPair { genre: "genre 3 y".into(), audience: "audience 3 x".into() });
    }

    #[test]
    fn parses_arrays_of_pair_objects() {
        let answer = r#"{"pairs": [{"Genre": "story", "Audience": "kids"}, {"genre": "report", "audience": "CEOs"}]}"#;
        let pairs = parse_pairs(answer, 2).unwrap();
        assert_eq!(pairs[1], GaPair { genre: "report".into(), audience: "CEOs".into() });
    }

    #[test]
    fn echoed_template_placeholders_are_not_pairs() {
        // What SmolLM2-135M answered to ga.v2 for most chunks.
        for (genre, audience) in [
            ("<genre_1>", "<audience_1>"),
            ("<genre_1", "<audience_1"),
            ("Genre 1", "Audience 1"),
            ("The 1st genre", "The 1st audience"),
            ("...", "..."),
            ("a news report", "<audience>"),
        ] {
            assert!(is_placeholder(genre) || is_placeholder(audience), "{genre} / {audience}");
        }
        for real in ["A news report", "Genre fiction fans aged 20-30", "audiences of 5-year-olds", "1st-year students"]
        {
            assert!(!is_placeholder(real), "{real}");
        }
        let echoed: String = format!(
            "{{{}}}",
            (1..=5)
                .map(|k| format!("\"genre_{k}\": \"<genre_{k}>\", \"audience_{k}\": \"<audience_{k}>\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let f = parse_pairs(&echoed, 5).unwrap_err();
        assert_eq!(f.reason, "ga_too_few_pairs");
        assert!(f.detail.starts_with("0 valid distinct pairs"), "{}", f.detail);
    }

    #[test]
    fn five_pairs_before_a_runaway_answer_are_kept() {
        // The object never closes: the model went on with more keys until the budget.
        let runaway = format!(
            "{}, \"genre_1\": \"again\", \"genre_6\": \"x\", \"audience_6\": \"cut o",
            &flat(5)[..flat(5).len() - 1]
        );
        let pairs = parse_pairs(&runaway, 5).unwrap();
        assert_eq!(pairs.len(), 5);
        assert_eq!(pairs[0].genre, "genre 1 y", "the first value of a repeated key counts");
        let too_short = &flat(3)[..flat(3).len() - 1];
        assert_eq!(parse_pairs(too_short, 5).unwrap_err().reason, "ga_too_few_pairs");
    }

    #[test]
    fn rejects_with_reason_codes() {
        assert_eq!(parse_pairs("I cannot do that.", 5).unwrap_err().reason, "ga_no_json");
        let four = parse_pairs(&flat(4), 5).unwrap_err();
        assert_eq!(four.reason, "ga_too_few_pairs");
        assert!(four.detail.starts_with("4 valid distinct pairs"), "{}", four.detail);
        let dup = r#"{"genre_1": "a story", "audience_1": "kids", "genre_2": "A  Story", "audience_2": "Kids",
                      "genre_3": "", "audience_3": "x"}"#;
        let f = parse_pairs(dup, 2).unwrap_err();
        assert!(f.detail.contains("1 with an empty or placeholder genre or audience, 1 duplicates"), "{}", f.detail);
        assert_eq!(parse_pairs(dup, 1).unwrap().len(), 1);
    }
}
