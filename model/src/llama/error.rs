//! Why a model could not be loaded.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum LlamaError {
    /// The file cannot be read, is not GGUF, or its tokenizer metadata is unusable.
    Data(data::Error),
    /// A readable GGUF file the engine cannot run, and why.
    Model { path: PathBuf, message: String },
}

impl LlamaError {
    pub(crate) fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        LlamaError::Model { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for LlamaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LlamaError::Data(e) => write!(f, "{e}"),
            LlamaError::Model { path, message } => write!(f, "{}: {message}", path.display()),
        }
    }
}

impl std::error::Error for LlamaError {}

impl From<data::Error> for LlamaError {
    fn from(e: data::Error) -> Self {
        LlamaError::Data(e)
    }
}
