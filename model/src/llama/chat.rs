//! ChatML prompts, as the GGUF chat template of SmolLM2 (and most small instruct
//! models) lays them out:
//!
//! ```text
//! <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n
//! ```
//!
//! The template is not executed (it is Jinja); it is checked to be ChatML, and the
//! default system line it inserts when a conversation has none is read out of it.

use std::path::Path;

use data::gguf::{GgufFile, GgufValue};
use data::llm::ChatMessage;
use data::Tokenizer;

use super::error::LlamaError;

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";

#[derive(Clone, Debug)]
pub struct ChatTemplate {
    im_start: u32,
    im_end: u32,
    /// The system message used when a conversation does not start with one.
    default_system: Option<String>,
}

impl ChatTemplate {
    /// Reads `tokenizer.chat_template` (ChatML is assumed when it is absent) and the
    /// special tokens' ids; `path` only names the file in errors.
    pub fn from_gguf(file: &GgufFile, tokenizer: &Tokenizer, path: &Path) -> Result<ChatTemplate, LlamaError> {
        let template = file.get("tokenizer.chat_template").and_then(GgufValue::as_str);
        if template.is_some_and(|t| !t.contains(IM_START)) {
            return Err(LlamaError::model(path, "tokenizer.chat_template is not ChatML (no <|im_start|>)"));
        }
        let id = |s: &str| {
            tokenizer.special_id(s).ok_or_else(|| LlamaError::model(path, format!("the vocabulary has no {s} token")))
        };
        Ok(ChatTemplate {
            im_start: id(IM_START)?,
            im_end: id(IM_END)?,
            default_system: template.and_then(default_system),
        })
    }

    /// The end-of-turn token.
    pub fn im_end(&self) -> u32 {
        self.im_end
    }

    pub fn default_system(&self) -> Option<&str> {
        self.default_system.as_deref()
    }

    /// Token ids of the conversation followed by the assistant's turn opening. Message
    /// text is encoded as plain text: special-token spellings in it stay text, so
    /// content cannot forge turns.
    pub fn encode(&self, tokenizer: &Tokenizer, messages: &[ChatMessage]) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut turn = |role: &str, content: Option<&str>| {
            ids.push(self.im_start);
            match content {
                Some(content) => {
                    ids.extend(tokenizer.encode(&format!("{role}\n{content}")));
                    ids.push(self.im_end);
                    ids.extend(tokenizer.encode("\n"));
                }
                None => ids.extend(tokenizer.encode(&format!("{role}\n"))),
            }
        };
        if let (Some(system), false) = (&self.default_system, messages.first().is_some_and(|m| m.role == "system")) {
            turn("system", Some(system));
        }
        for m in messages {
            turn(&m.role, Some(&m.content));
        }
        turn("assistant", None);
        ids
    }
}

/// The literal system turn a ChatML template writes, if it writes one.
fn default_system(template: &str) -> Option<String> {
    let opening = format!("{IM_START}system\n");
    let start = template.find(&opening)? + opening.len();
    let len = template[start..].find(IM_END)?;
    Some(template[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_system_line_is_read_from_the_template() {
        let t =
            "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nBe brief.<|im_end|>\n' }}";
        assert_eq!(default_system(t).as_deref(), Some("Be brief."));
        assert_eq!(default_system("{{'<|im_start|>' + message['role'] + '\n'}}"), None);
    }
}
