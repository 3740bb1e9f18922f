//! The default corpus, embedded in the crate (English Wikipedia extracts
//! and the Python 3.11 documentation, about 10.5 M characters; sources and
//! licenses in `data/corpus/ATTRIBUTION.md`), and the deterministic
//! train/validation split by document id.

use std::path::Path;

use crate::error::Result;
use crate::hash::stable_hash;
use crate::readers::{read_jsonl_zstd, Document, ReadReport};

/// The compressed JSONL files, by name.
pub const FILES: [(&str, &[u8]); 2] = [
    ("wiki.jsonl.zst", include_bytes!("../corpus/wiki.jsonl.zst")),
    ("pydocs.jsonl.zst", include_bytes!("../corpus/pydocs.jsonl.zst")),
];

/// Sources and license lines of the embedded corpus.
pub const ATTRIBUTION: &str = include_str!("../corpus/ATTRIBUTION.md");

/// The default share of documents held out for validation.
pub const DEFAULT_VAL_FRACTION: f64 = 0.02;

/// A stable hash of the embedded files, for cache keys.
pub fn content_hash() -> u64 {
    let mut h = crate::hash::StableHasher::new();
    for (name, bytes) in FILES {
        h.field(name.as_bytes()).u64(stable_hash(bytes));
    }
    h.finish()
}

/// All documents of the embedded corpus, in file order.
pub fn documents() -> Result<(Vec<Document>, ReadReport)> {
    let mut docs = Vec::new();
    let mut report = ReadReport::default();
    for (name, bytes) in FILES {
        read_jsonl_zstd(bytes, Path::new(name), &mut report, &mut |d| {
            docs.push(d);
            Ok(())
        })?;
    }
    Ok((docs, report))
}

/// Whether document `id` belongs to the validation split. Decided by the
/// id's hash alone, so it never changes with order, count or machine.
pub fn is_validation(id: &str, val_fraction: f64) -> bool {
    // The top 53 bits as a uniform number in [0, 1).
    let u = (stable_hash(id.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64;
    u < val_fraction
}

/// Documents split into train and validation.
#[derive(Clone, Debug, Default)]
pub struct Split {
    pub train: Vec<Document>,
    pub val: Vec<Document>,
}

/// Splits documents by id hash, keeping their order within each side.
pub fn split(docs: Vec<Document>, val_fraction: f64) -> Split {
    let (val, train) = docs.into_iter().partition(|d| is_validation(&d.id, val_fraction));
    Split { train, val }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_by_id_and_roughly_proportional() {
        let docs: Vec<Document> = (0..10_000).map(|i| Document { id: format!("doc-{i}"), text: "x".into() }).collect();
        let s = split(docs.clone(), 0.02);
        assert!((150..250).contains(&s.val.len()), "{}", s.val.len());
        let reversed = split(docs.into_iter().rev().collect(), 0.02);
        let mut a: Vec<_> = s.val.iter().map(|d| &d.id).collect();
        let mut b: Vec<_> = reversed.val.iter().map(|d| &d.id).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
