//! [`LlamaEngine`]: a GGUF model with its tokenizer and chat template, serving
//! [`TextGenerator`] requests locally.

use std::path::Path;

use data::gguf::GgufFile;
use data::llm::{ChatRequest, ChatResponse, LlmError, TextGenerator};
use data::Tokenizer;

use super::chat::ChatTemplate;
use super::error::LlamaError;
use super::weights::Llama;

pub struct LlamaEngine {
    model: Llama,
    tokenizer: Tokenizer,
    chat: ChatTemplate,
    /// End-of-sequence and end-of-turn ids.
    stop: Vec<u32>,
    model_id: String,
}

impl LlamaEngine {
    /// Loads model, tokenizer and chat template from the GGUF file at `path`; the model id
    /// is the file name without `.gguf`.
    pub fn load(path: impl AsRef<Path>) -> Result<LlamaEngine, LlamaError> {
        let path = path.as_ref();
        let file = GgufFile::read(path)?;
        let tokenizer = Tokenizer::from_gguf(&file).map_err(|e| LlamaError::model(path, e.to_string()))?;
        let chat = ChatTemplate::from_gguf(&file, &tokenizer, path)?;
        let model = Llama::load(path)?;
        if tokenizer.vocab_size() > model.config.vocab_size {
            return Err(LlamaError::model(
                path,
                format!("tokenizer has {} tokens, the model {}", tokenizer.vocab_size(), model.config.vocab_size),
            ));
        }
        let mut stop: Vec<u32> = tokenizer.eos_id().into_iter().chain([chat.im_end()]).collect();
        stop.dedup();
        let model_id = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let model_id = model_id.strip_suffix(".gguf").unwrap_or(&model_id).to_string();
        Ok(LlamaEngine { model, tokenizer, chat, stop, model_id })
    }

    pub fn model(&self) -> &Llama {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat
    }

    /// The ids that end a generation.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop
    }

    /// The prompt ids of a request, or why it cannot run.
    pub fn prompt_ids(&self, request: &ChatRequest) -> Result<Vec<u32>, LlmError> {
        let s = &request.sampling;
        if !(s.temperature >= 0.0 && s.temperature.is_finite()) {
            return Err(LlmError::fatal(format!("temperature {} must be finite and >= 0", s.temperature)));
        }
        if s.top_p.is_nan() || s.top_p <= 0.0 {
            return Err(LlmError::fatal(format!("top_p {} must be > 0", s.top_p)));
        }
        let ids = self.chat.encode(&self.tokenizer, &request.messages);
        let context = self.model.config.context_len;
        if ids.len() + s.max_tokens > context {
            return Err(LlmError::fatal(format!(
                "prompt of {} tokens plus max_tokens {} exceeds the context window of {context}",
                ids.len(),
                s.max_tokens
            )));
        }
        Ok(ids)
    }
}

impl TextGenerator for LlamaEngine {
    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn generate(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, LlmError>> {
        let prompts: Vec<Result<Vec<u32>, LlmError>> = requests.iter().map(|r| self.prompt_ids(r)).collect();
        let runnable: Vec<(&[u32], &data::llm::Sampling)> = prompts
            .iter()
            .zip(requests)
            .filter_map(|(p, r)| p.as_ref().ok().map(|ids| (ids.as_slice(), &r.sampling)))
            .collect();
        let mut generations = self.model.generate(&runnable, &self.stop).into_iter();
        prompts
            .into_iter()
            .map(|prompt| {
                let ids = prompt?;
                let g = generations.next().expect("one generation per runnable prompt");
                let text = self.tokenizer.decode(&g.tokens).map_err(|e| LlmError::fatal(e.to_string()))?;
                Ok(ChatResponse { text, finish: g.finish, prompt_tokens: ids.len(), completion_tokens: g.tokens.len() })
            })
            .collect()
    }
}
