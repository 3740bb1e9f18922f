//! The crate's error type: every failure names the file and, where it has
//! one, the line or byte offset, so a bad input can be found and fixed.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while reading, writing or tokenizing data.
#[derive(Debug)]
pub enum Error {
    /// An operating-system I/O error on `path`.
    Io { path: PathBuf, source: std::io::Error },
    /// A JSON document (tokenizer file, loader state) that does not parse or
    /// does not have the expected shape.
    Json { path: PathBuf, message: String },
    /// A token shard that is not one of ours or is damaged.
    Shard { path: PathBuf, message: String },
    /// A GGUF file that does not parse; `offset` is the byte where it failed.
    Gguf { path: PathBuf, offset: u64, message: String },
    /// A Parquet file that cannot be read or lacks the requested columns.
    Parquet { path: PathBuf, message: String },
    /// A tokenizer definition that is inconsistent or unsupported.
    Tokenizer(String),
    /// Data produced with one tokenizer used with another.
    TokenizerMismatch { path: PathBuf, expected: u64, found: u64 },
    /// A loader configuration or resume state that cannot be honoured.
    Loader(String),
    /// A MAGA pipeline stage that cannot run as asked (missing upstream, settings mismatch).
    Stage(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub(crate) fn shard(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Shard { path: path.as_ref().to_path_buf(), message: message.into() }
    }

    pub(crate) fn json(path: impl AsRef<Path>, message: impl fmt::Display) -> Self {
        Error::Json { path: path.as_ref().to_path_buf(), message: message.to_string() }
    }

    pub(crate) fn parquet(path: impl AsRef<Path>, message: impl fmt::Display) -> Self {
        Error::Parquet { path: path.as_ref().to_path_buf(), message: message.to_string() }
    }

    pub(crate) fn tokenizer(message: impl Into<String>) -> Self {
        Error::Tokenizer(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Json { path, message } => {
                write!(f, "{}: invalid JSON: {message}", path.display())
            }
            Error::Shard { path, message } => {
                write!(f, "{}: bad token shard: {message}", path.display())
            }
            Error::Gguf { path, offset, message } => {
                write!(f, "{}: bad GGUF at byte {offset}: {message}", path.display())
            }
            Error::Parquet { path, message } => write!(f, "{}: parquet: {message}", path.display()),
            Error::Tokenizer(message) => write!(f, "tokenizer: {message}"),
            Error::TokenizerMismatch { path, expected, found } => write!(
                f,
                "{}: made with tokenizer {found:016x}, but tokenizer {expected:016x} is in use",
                path.display()
            ),
            Error::Loader(message) => write!(f, "loader: {message}"),
            Error::Stage(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
