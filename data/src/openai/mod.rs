//! OpenAI-compatible chat completions over HTTP: a client that implements
//! [`TextGenerator`](crate::llm::TextGenerator) against any such server (vLLM, SGLang,
//! llama.cpp, Ollama, our own), and a server that exposes any `TextGenerator` (`maga serve`).

pub mod client;
pub mod server;
mod wire;

pub use client::{ClientConfig, OpenAiClient};
pub use server::{serve, RunningServer, ServerConfig};
