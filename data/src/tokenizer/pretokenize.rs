//! Pre-tokenization: splitting text into the pieces BPE merges within.
//!
//! A hand-written scanner equivalent to GPT-2's pattern
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! (leftmost alternative first, greedy runs). It needs no regex engine and
//! no backtracking: the only lookahead, `\s+(?!\S)`, amounts to "a run of
//! whitespace gives up its last character when a non-space follows".

use serde::{Deserialize, Serialize};
use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Which pre-tokenizer a tokenizer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreTokenizer {
    /// GPT-2's pattern, as in GPT-2 and HF `ByteLevel(use_regex=true)`.
    Gpt2,
    /// Every numeric character on its own first, then GPT-2's pattern on
    /// the text between (SmolLM2; HF `Digits(individual_digits=true)`).
    Gpt2SplitDigits,
}

impl PreTokenizer {
    /// Splits `text` into pre-tokens; they concatenate back to `text`.
    pub fn split<'a>(&self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        PreTokens { text, pos: 0, segment_end: 0, split_digits: *self == PreTokenizer::Gpt2SplitDigits }
    }

    /// A short stable name, used in fingerprints.
    pub fn name(&self) -> &'static str {
        match self {
            PreTokenizer::Gpt2 => "gpt2",
            PreTokenizer::Gpt2SplitDigits => "gpt2-split-digits",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' => Class::Space,
            _ => Class::Other,
        };
    }
    if c.is_whitespace() {
        return Class::Space;
    }
    match get_general_category(c) {
        G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter => {
            Class::Letter
        }
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

struct PreTokens<'a> {
    text: &'a str,
    pos: usize,
    /// With digit splitting, where the current digit-free segment ends:
    /// GPT-2's pattern sees the text up to the next digit as if it ended
    /// there. Cached so that long digit-free texts are scanned once.
    segment_end: usize,
    split_digits: bool,
}

impl<'a> Iterator for PreTokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = &self.text[self.pos..];
        let first = rest.chars().next()?;
        let len = if !self.split_digits {
            gpt2_piece_len(rest)
        } else if class(first) == Class::Number {
            first.len_utf8()
        } else {
            if self.segment_end <= self.pos {
                self.segment_end = rest
                    .char_indices()
                    .find(|&(_, c)| class(c) == Class::Number)
                    .map_or(self.text.len(), |(i, _)| self.pos + i);
            }
            gpt2_piece_len(&self.text[self.pos..self.segment_end])
        };
        self.pos += len;
        Some(&rest[..len])
    }
}

/// Length in bytes of the GPT-2 pre-token at the start of non-empty `s`.
fn gpt2_piece_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    if bytes[0] == b'\'' {
        if let Some(n) = contraction_len(&bytes[1..]) {
            return 1 + n;
        }
    }
    let mut chars = s.char_indices();
    let (_, first) = chars.next().expect("non-empty");
    // ` ?X+` for X in letters, numbers, other: a leading space joins the run.
    let (run_class, run_start) = match class(first) {
        Class::Space if first == ' ' => match chars.next() {
            Some((i, c)) if class(c) != Class::Space => (class(c), i),
            _ => return whitespace_len(s),
        },
        Class::Space => return whitespace_len(s),
        c => (c, 0),
    };
    s[run_start..].char_indices().find(|&(_, c)| class(c) != run_class).map_or(s.len(), |(i, _)| run_start + i)
}

fn contraction_len(after_quote: &[u8]) -> Option<usize> {
    match after_quote {
        [b'r', b'e', ..] | [b'v', b'e', ..] | [b'l', b'l', ..] => Some(2),
        [b's' | b't' | b'm' | b'd', ..] => Some(1),
        _ => None,
    }
}

/// `\s+(?!\S)|\s+` at the start of `s`, which begins with whitespace.
fn whitespace_len(s: &str) -> usize {
    let mut last_start = 0;
    for (i, c) in s.char_indices() {
        if class(c) != Class::Space {
            // A non-space follows: the run leaves its last character to
            // prefix the next piece, unless that is all there is.
            return if last_start > 0 { last_start } else { i };
        }
        last_start = i;
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(p: PreTokenizer, s: &str) -> Vec<&str> {
        p.split(s).collect()
    }

    #[test]
    fn gpt2_pattern_cases() {
        let p = PreTokenizer::Gpt2;
        assert_eq!(pieces(p, "Hello world"), ["Hello", " world"]);
        assert_eq!(pieces(p, "I'm they'll 'sa"), ["I", "'m", " they", "'ll", " '", "sa"]);
        assert_eq!(pieces(p, "a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces(p, "a \n\nb  "), ["a", " \n", "\n", "b", "  "]);
        assert_eq!(pieces(p, "x=12.5;\"'s"), ["x", "=", "12", ".", "5", ";\"'", "s"]);
        assert_eq!(pieces(p, " \u{e9}t\u{e9} 北京"), [" \u{e9}t\u{e9}", " 北京"]);
        assert_eq!(pieces(p, "\t\tx"), ["\t", "\t", "x"]);
        assert_eq!(pieces(p, ""), Vec::<&str>::new());
    }

    #[test]
    fn digit_split_isolates_every_digit() {
        let p = PreTokenizer::Gpt2SplitDigits;
        assert_eq!(pieces(p, "year 2024!"), ["year", " ", "2", "0", "2", "4", "!"]);
        assert_eq!(pieces(p, "a  1"), ["a", "  ", "1"]);
    }
}
