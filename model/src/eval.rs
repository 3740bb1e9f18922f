//! Evaluation of a model on arbitrary text: mean next-token loss, perplexity, bits per
//! byte (tokenizer-independent), and per-token losses for analysis.

use crate::transformer::Model;
use data::Tokenizer;
use tensor::Backend;

/// Per-document token ids and the loss of predicting each of them.
#[derive(Clone, Debug, PartialEq)]
pub struct DocLosses {
    pub tokens: Vec<u32>,
    pub losses: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub documents: usize,
    pub tokens: u64,
    /// UTF-8 bytes of the predicted tokens.
    pub bytes: u64,
    pub mean_loss: f64,
    pub perplexity: f64,
    pub bits_per_byte: f64,
    pub per_document: Vec<DocLosses>,
}

/// Scores every token of every document. Each document is preceded by the end-of-text
/// token as context (so its first token is predicted too) and cut into windows of
/// `seq_len` predictions; windows are batched `batch` at a time.
pub fn evaluate_documents<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    docs: &[String],
    seq_len: usize,
    batch: usize,
) -> EvalReport {
    let eos = tokenizer.eos_id().unwrap_or(0);
    let encoded = tokenizer.encode_batch(docs);
    // (document, first target index, window tokens)
    let mut windows: Vec<(usize, usize, Vec<u32>)> = Vec::new();
    for (d, ids) in encoded.iter().enumerate() {
        let seq: Vec<u32> = std::iter::once(eos).chain(ids.iter().copied()).collect();
        let mut start = 0;
        while start + 1 < seq.len() {
            let end = (start + seq_len + 1).min(seq.len());
            windows.push((d, start, seq[start..end].to_vec()));
            start = end - 1;
        }
    }
    let mut per_document: Vec<DocLosses> =
        encoded.iter().map(|ids| DocLosses { tokens: ids.clone(), losses: vec![0.0; ids.len()] }).collect();
    for group in windows.chunks(batch.max(1)) {
        // Windows in a batch share a length: pad short ones and ignore the padding.
        let len = group.iter().map(|w| w.2.len() - 1).max().unwrap_or(0);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (_, _, w) in group {
            let n = w.len() - 1;
            x.extend_from_slice(&w[..n]);
            x.extend(std::iter::repeat_n(eos, len - n));
            y.extend_from_slice(&w[1..]);
            y.extend(std::iter::repeat_n(crate::IGNORE, len - n));
        }
        let losses = model.token_losses(&x, &y, group.len(), len).to_f64_vec();
        for (r, (d, start, w)) in group.iter().enumerate() {
            for i in 0..w.len() - 1 {
                per_document[*d].losses[start + i] = losses[r * len + i] as f32;
            }
        }
    }
    let tokens: u64 = per_document.iter().map(|d| d.tokens.len() as u64).sum();
    let total: f64 = per_document.iter().flat_map(|d| d.losses.iter()).map(|&l| l as f64).sum();
    let bytes: u64 = per_document
        .iter()
        .flat_map(|d| d.tokens.iter())
        .map(|&t| tokenizer.token_bytes(t).map_or(0, |b| b.len() as u64))
        .sum();
    let mean_loss = total / tokens.max(1) as f64;
    EvalReport {
        documents: docs.len(),
        tokens,
        bytes,
        mean_loss,
        perplexity: mean_loss.exp(),
        bits_per_byte: total / std::f64::consts::LN_2 / bytes.max(1) as f64,
        per_document,
    }
}
