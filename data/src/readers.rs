//! Streaming corpus readers: plain text files and folders, JSONL (plain or
//! zstd-compressed) with configurable fields, and Parquet (MAGACorpus
//! schema or any table with a string column).
//!
//! Readers hand documents one at a time to a callback, so a corpus never
//! has to fit in memory. Records that cannot be used (invalid UTF-8, a
//! malformed JSON line, a missing or null text, an empty text) are skipped
//! and counted in a [`ReadReport`], which keeps the first few locations;
//! failures to read at all (a missing file, an I/O error, an unreadable
//! Parquet footer) are errors.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde_json::Value;

use crate::error::{Error, Result};

/// One document of a corpus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub text: String,
}

/// Why a record was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Invalid UTF-8 at this byte offset within the record.
    InvalidUtf8 {
        offset: usize,
    },
    MalformedJson(String),
    /// The text field is absent, null or not a string.
    MissingText,
    EmptyText,
}

impl SkipReason {
    fn kind(&self) -> &'static str {
        match self {
            SkipReason::InvalidUtf8 { .. } => "invalid UTF-8",
            SkipReason::MalformedJson(_) => "malformed JSON",
            SkipReason::MissingText => "missing text",
            SkipReason::EmptyText => "empty text",
        }
    }
}

/// A skipped record: file, line (JSONL) or row (Parquet), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub path: PathBuf,
    pub record: Option<u64>,
    pub reason: SkipReason,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(r) = self.record {
            write!(f, ":{r}")?;
        }
        match &self.reason {
            SkipReason::InvalidUtf8 { offset } => write!(f, ": invalid UTF-8 at byte {offset}"),
            SkipReason::MalformedJson(m) => write!(f, ": malformed JSON: {m}"),
            other => write!(f, ": {}", other.kind()),
        }
    }
}

/// What a read produced and what it skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    pub files: u64,
    pub documents: u64,
    /// UTF-8 bytes of text delivered.
    pub bytes: u64,
    /// Skips counted by kind.
    pub skipped: BTreeMap<&'static str, u64>,
    /// The first [`ReadReport::EXAMPLES`] skips, with their locations.
    pub examples: Vec<Skip>,
}

impl ReadReport {
    pub const EXAMPLES: usize = 20;

    pub fn total_skipped(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn skip(&mut self, path: &Path, record: Option<u64>, reason: SkipReason) {
        *self.skipped.entry(reason.kind()).or_insert(0) += 1;
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push(Skip { path: path.to_path_buf(), record, reason });
        }
    }

    fn deliver(&mut self, doc: Document, sink: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        self.documents += 1;
        self.bytes += doc.text.len() as u64;
        sink(doc)
    }
}

impl fmt::Display for ReadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} documents ({} bytes) from {} files", self.documents, self.bytes, self.files)?;
        if self.skipped.is_empty() {
            return write!(f, ", nothing skipped");
        }
        let kinds: Vec<String> = self.skipped.iter().map(|(k, n)| format!("{n} {k}")).collect();
        write!(f, "; skipped {}", kinds.join(", "))?;
        for e in &self.examples {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// A corpus on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A text file, or a folder of them (recursively, in path order); each
    /// file is one document whose id is its path below `path`.
    Text { path: PathBuf },
    /// A `.jsonl` / `.jsonl.zst` file or a folder of them; one JSON object
    /// a line. The id is `id_field` when present, else "file:line".
    Jsonl { path: PathBuf, text_field: String, id_field: String },
    /// A `.parquet` file or a folder of them. Columns are named by their
    /// dotted path (`meta.raw_text`); the id is "file:row" when `id_column`
    /// is `None`.
    Parquet { path: PathBuf, text_column: String, id_column: Option<String> },
}

/// Which text of a MAGACorpus row to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MagaText {
    /// `content_split`: the reformulated text.
    Reformulated,
    /// `meta.raw_text`: the source chunk it was reformulated from.
    Raw,
}

impl Source {
    /// JSONL with `{"id": ..., "text": ...}` lines, the default corpus format.
    pub fn jsonl(path: impl Into<PathBuf>) -> Source {
        Source::Jsonl { path: path.into(), text_field: "text".into(), id_field: "id".into() }
    }

    /// MAGACorpus Parquet (`meta.{chunk_id, docid, meta_extra, source, split,
    /// genre, audience, raw_text}`, `content_split`), keyed by `meta.chunk_id`.
    pub fn maga(path: impl Into<PathBuf>, text: MagaText) -> Source {
        let column = match text {
            MagaText::Reformulated => "content_split",
            MagaText::Raw => "meta.raw_text",
        };
        Source::Parquet { path: path.into(), text_column: column.into(), id_column: Some("meta.chunk_id".into()) }
    }

    /// Streams every usable document to `sink`, in a deterministic order.
    pub fn read(&self, sink: &mut dyn FnMut(Document) -> Result<()>) -> Result<ReadReport> {
        let mut report = ReadReport::default();
        match self {
            Source::Text { path } => {
                for file in list_files(path, &[])? {
                    report.files += 1;
                    let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
                    let id = file.strip_prefix(path).ok().filter(|p| !p.as_os_str().is_empty()).unwrap_or(&file);
                    let id = id.to_string_lossy().into_owned();
                    if let Some(text) = checked_text(bytes, &file, None, &mut report) {
                        report.deliver(Document { id, text }, sink)?;
                    }
                }
            }
            Source::Jsonl { path, text_field, id_field } => {
                for file in list_files(path, &[".jsonl", ".jsonl.zst"])? {
                    report.files += 1;
                    let reader = open_maybe_zstd(&file)?;
                    read_jsonl(reader, &file, text_field, id_field, &mut report, sink)?;
                }
            }
            Source::Parquet { path, text_column, id_column } => {
                for file in list_files(path, &[".parquet"])? {
                    report.files += 1;
                    read_parquet(&file, text_column, id_column.as_deref(), &mut report, sink)?;
                }
            }
        }
        Ok(report)
    }

    /// Reads everything into memory (for small corpora and tests).
    pub fn read_all(&self) -> Result<(Vec<Document>, ReadReport)> {
        let mut docs = Vec::new();
        let report = self.read(&mut |d| {
            docs.push(d);
            Ok(())
        })?;
        Ok((docs, report))
    }
}

/// `path` itself if it is a file, else the files below it whose names end
/// with one of `suffixes` (all files if empty), sorted, hidden ones left out.
fn list_files(path: &Path, suffixes: &[&str]) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                pending.push(p);
            } else if suffixes.is_empty() || suffixes.iter().any(|s| name.ends_with(s)) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn open_maybe_zstd(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(if path.extension().is_some_and(|e| e == "zst") {
        Box::new(BufReader::new(zstd::Decoder::new(file).map_err(|e| Error::io(path, e))?))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, file))
    })
}

/// UTF-8 and non-empty, or a counted skip.
fn checked_text(bytes: Vec<u8>, path: &Path, record: Option<u64>, report: &mut ReadReport) -> Option<String> {
    match String::from_utf8(bytes) {
        Err(e) => {
            report.skip(path, record, SkipReason::InvalidUtf8 { offset: e.utf8_error().valid_up_to() });
            None
        }
        Ok(text) if text.is_empty() => {
            report.skip(path, record, SkipReason::EmptyText);
            None
        }
        Ok(text) => Some(text),
    }
}

/// Reads JSONL from any buffered reader; `path` names it in reports.
pub fn read_jsonl(
    mut input: impl BufRead,
    path: &Path,
    text_field: &str,
    id_field: &str,
    report: &mut ReadReport,
    sink: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<()> {
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))? == 0 {
            return Ok(());
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        let Some(raw) = checked_text(std::mem::take(&mut line), path, Some(number), report) else {
            continue;
        };
        let value: Value = match serde_json::from_str(&raw) {
            Ok(v) => v,
            Err(e) => {
                report.skip(path, Some(number), SkipReason::MalformedJson(e.to_string()));
                continue;
            }
        };
        let text = match value.get(text_field) {
            Some(Value::String(t)) if t.is_empty() => {
                report.skip(path, Some(number), SkipReason::EmptyText);
                continue;
            }
            Some(Value::String(t)) => t.clone(),
            _ => {
                report.skip(path, Some(number), SkipReason::MissingText);
                continue;
            }
        };
        let id = match value.get(id_field) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            _ => format!("{}:{number}", path.display()),
        };
        report.deliver(Document { id, text }, sink)?;
    }
    unreachable!("the line loop only ends by returning")
}

fn read_parquet(
    path: &Path,
    text_column: &str,
    id_column: Option<&str>,
    report: &mut ReadReport,
    sink: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(path, e))?;
    let schema = builder.parquet_schema();
    let wanted: Vec<&str> = std::iter::once(text_column).chain(id_column).collect();
    let mut leaves = Vec::new();
    for name in &wanted {
        let index = (0..schema.num_columns())
            .find(|&i| schema.column(i).path().string() == *name)
            .ok_or_else(|| Error::parquet(path, format!("no column {name:?}")))?;
        leaves.push(index);
    }
    let mask = ProjectionMask::leaves(schema, leaves);
    let reader = builder.with_projection(mask).with_batch_size(1024).build().map_err(|e| Error::parquet(path, e))?;
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::parquet(path, e))?;
        let texts = column_path(&batch, text_column, path)?;
        let ids = id_column.map(|c| column_path(&batch, c, path)).transpose()?;
        for i in 0..batch.num_rows() {
            row += 1;
            let text = match string_at(&texts, i, path)? {
                None => {
                    report.skip(path, Some(row), SkipReason::MissingText);
                    continue;
                }
                Some(t) if t.is_empty() => {
                    report.skip(path, Some(row), SkipReason::EmptyText);
                    continue;
                }
                Some(t) => t,
            };
            let id = match &ids {
                Some(ids) => string_at(ids, i, path)?,
                None => None,
            };
            let id = id.unwrap_or_else(|| format!("{}:{row}", path.display()));
            report.deliver(Document { id, text }, sink)?;
        }
    }
    Ok(())
}

/// The arrays along a dotted column path, outermost first (a row is null
/// if any level is).
fn column_path(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<ArrayRef>> {
    let mut parts = name.split('.');
    let first = parts.next().unwrap_or_default();
    let mut levels =
        vec![batch.column_by_name(first).ok_or_else(|| Error::parquet(path, format!("no column {first:?}")))?.clone()];
    for part in parts {
        let parent = levels.last().expect("non-empty");
        let child = parent
            .as_struct_opt()
            .and_then(|s| s.column_by_name(part))
            .ok_or_else(|| Error::parquet(path, format!("column {name:?}: no struct field {part:?}")))?
            .clone();
        levels.push(child);
    }
    Ok(levels)
}

/// The value at `i` of the last array in `levels` as a string: string
/// columns as they are, integer columns formatted; `None` when null.
fn string_at(levels: &[ArrayRef], i: usize, path: &Path) -> Result<Option<String>> {
    if levels.iter().any(|a| a.is_null(i)) {
        return Ok(None);
    }
    let a = levels.last().expect("non-empty");
    use arrow_array::types::{Int32Type, Int64Type, UInt64Type};
    let s = if let Some(s) = a.as_string_opt::<i32>() {
        s.value(i).to_string()
    } else if let Some(s) = a.as_string_opt::<i64>() {
        s.value(i).to_string()
    } else if let Some(s) = a.as_string_view_opt() {
        s.value(i).to_string()
    } else if let Some(n) = a.as_primitive_opt::<Int64Type>() {
        n.value(i).to_string()
    } else if let Some(n) = a.as_primitive_opt::<Int32Type>() {
        n.value(i).to_string()
    } else if let Some(n) = a.as_primitive_opt::<UInt64Type>() {
        n.value(i).to_string()
    } else {
        return Err(Error::parquet(path, format!("column of type {} is not text", a.data_type())));
    };
    Ok(Some(s))
}

/// Reads JSONL from an in-memory zstd stream (the embedded corpus).
pub(crate) fn read_jsonl_zstd(
    compressed: &[u8],
    name: &Path,
    report: &mut ReadReport,
    sink: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<()> {
    let decoder = zstd::Decoder::with_buffer(compressed).map_err(|e| Error::io(name, e))?;
    report.files += 1;
    read_jsonl(BufReader::new(decoder), name, "text", "id", report, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_skips_are_counted_with_locations() {
        let input: &[u8] = b"{\"id\": \"a\", \"text\": \"one\"}\nnot json\n{\"text\": \"\"}\n{\"id\": 7, \"text\": \"two\"}\r\n{\"id\": \"x\"}\n\xff\n";
        let mut docs = Vec::new();
        let mut report = ReadReport::default();
        read_jsonl(input, Path::new("f.jsonl"), "text", "id", &mut report, &mut |d| {
            docs.push(d);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            docs,
            vec![Document { id: "a".into(), text: "one".into() }, Document { id: "7".into(), text: "two".into() }]
        );
        assert_eq!(report.total_skipped(), 4);
        assert_eq!(report.skipped["malformed JSON"], 1);
        assert_eq!(report.examples[0].record, Some(2));
        let shown = report.to_string();
        for expected in ["f.jsonl:3: empty text", "f.jsonl:5: missing text", "f.jsonl:6: invalid UTF-8 at byte 0"] {
            assert!(shown.contains(expected), "{shown}");
        }
    }
}
