//! Token shards: tokenized documents in one flat binary file, read by
//! memory map.
//!
//! Layout: a 64-byte little-endian header, then the tokens as u16 (when
//! the vocabulary fits) or u32, each document followed by the end-of-text
//! id. Header: magic "VWNSHARD", version u32, token width in bytes u32 (2
//! or 4), vocabulary size u32, reserved u32, token count u64, document
//! count u64, tokenizer fingerprint u64, zero padding. Opening checks all
//! of it against the file, so a truncated, padded or foreign file is an
//! error, never a silent misread.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::AtomicFile;
use crate::readers::Document;
use crate::tokenizer::Tokenizer;

pub const MAGIC: &[u8; 8] = b"VWNSHARD";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;

/// What a shard's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardHeader {
    /// Bytes per token: 2 or 4.
    pub width: u32,
    pub vocab_size: u32,
    pub tokens: u64,
    pub documents: u64,
    pub tokenizer_hash: u64,
}

impl ShardHeader {
    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.width.to_le_bytes());
        h[16..20].copy_from_slice(&self.vocab_size.to_le_bytes());
        h[24..32].copy_from_slice(&self.tokens.to_le_bytes());
        h[32..40].copy_from_slice(&self.documents.to_le_bytes());
        h[40..48].copy_from_slice(&self.tokenizer_hash.to_le_bytes());
        h
    }

    /// Parses and checks a header against the length of the whole file.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<ShardHeader> {
        let len = bytes.len();
        if len < HEADER_LEN {
            return Err(Error::shard(
                path,
                format!("{len} bytes is shorter than the {HEADER_LEN}-byte header (truncated?)"),
            ));
        }
        if &bytes[0..8] != MAGIC {
            return Err(Error::shard(path, "not a token shard (bad magic)"));
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != VERSION {
            return Err(Error::shard(path, format!("version {version}, this build reads {VERSION}")));
        }
        let header = ShardHeader {
            width: u32_at(12),
            vocab_size: u32_at(16),
            tokens: u64_at(24),
            documents: u64_at(32),
            tokenizer_hash: u64_at(40),
        };
        if header.width != width_for(header.vocab_size as usize) {
            return Err(Error::shard(
                path,
                format!(
                    "token width {} does not match vocabulary size {} (u16 up to 65,536, else u32)",
                    header.width, header.vocab_size
                ),
            ));
        }
        let expected =
            header.tokens.checked_mul(u64::from(header.width)).and_then(|b| b.checked_add(HEADER_LEN as u64));
        if expected != Some(len as u64) {
            return Err(Error::shard(
                path,
                format!("header says {} tokens of {} bytes, but the file has {} bytes after the header (truncated or corrupt)", header.tokens, header.width, len - HEADER_LEN),
            ));
        }
        Ok(header)
    }
}

/// Bytes per token for a vocabulary of `vocab_size` ids.
pub fn width_for(vocab_size: usize) -> u32 {
    if vocab_size <= 1 << 16 {
        2
    } else {
        4
    }
}

/// A memory-mapped, validated shard.
pub struct Shard {
    path: PathBuf,
    header: ShardHeader,
    map: memmap2::Mmap,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("path", &self.path).field("header", &self.header).finish()
    }
}

impl Shard {
    /// Opens and validates a shard's header against its size.
    pub fn open(path: impl AsRef<Path>) -> Result<Shard> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map of a file we do not modify; shards are
        // written under a temporary name and renamed, never rewritten.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let header = ShardHeader::parse(&map, path)?;
        Ok(Shard { path: path.to_path_buf(), header, map })
    }

    /// Opens a shard and checks that `tokenizer` made it.
    pub fn open_for(path: impl AsRef<Path>, tokenizer: &Tokenizer) -> Result<Shard> {
        let shard = Shard::open(path)?;
        shard.check_tokenizer(tokenizer)?;
        Ok(shard)
    }

    pub fn check_tokenizer(&self, tokenizer: &Tokenizer) -> Result<()> {
        if self.header.tokenizer_hash != tokenizer.fingerprint() {
            return Err(Error::TokenizerMismatch {
                path: self.path.clone(),
                expected: tokenizer.fingerprint(),
                found: self.header.tokenizer_hash,
            });
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.header.tokens as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends tokens `start..start + count` to `out` as u32.
    /// Panics if the range is outside the shard.
    pub fn read_into(&self, start: usize, count: usize, out: &mut Vec<u32>) {
        let w = self.header.width as usize;
        let bytes = &self.map[HEADER_LEN + start * w..HEADER_LEN + (start + count) * w];
        if w == 2 {
            out.extend(bytes.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))));
        } else {
            out.extend(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        }
    }

    /// Reads every token and checks it is below the vocabulary size: a full
    /// scan, for data of unknown provenance.
    pub fn verify_ids(&self) -> Result<()> {
        let mut buf = Vec::with_capacity(1 << 16);
        for start in (0..self.len()).step_by(1 << 16) {
            buf.clear();
            self.read_into(start, (self.len() - start).min(1 << 16), &mut buf);
            if let Some(pos) = buf.iter().position(|&t| t >= self.header.vocab_size) {
                return Err(Error::shard(
                    &self.path,
                    format!(
                        "token {} at position {} is outside the vocabulary of {}",
                        buf[pos],
                        start + pos,
                        self.header.vocab_size
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Writes one shard atomically; tokens go straight to disk.
pub struct ShardWriter {
    file: AtomicFile,
    path: PathBuf,
    header: ShardHeader,
    eos: u32,
}

impl ShardWriter {
    /// Starts a shard for documents tokenized by `tokenizer`, which must
    /// have an end-of-text id to separate them.
    pub fn create(path: impl AsRef<Path>, tokenizer: &Tokenizer) -> Result<ShardWriter> {
        let path = path.as_ref();
        let eos = tokenizer
            .eos_id()
            .ok_or_else(|| Error::tokenizer("the tokenizer has no end-of-text token to separate documents"))?;
        let vocab_size = tokenizer.vocab_size();
        let header = ShardHeader {
            width: width_for(vocab_size),
            vocab_size: u32::try_from(vocab_size).map_err(|_| Error::tokenizer("vocabulary larger than u32"))?,
            tokens: 0,
            documents: 0,
            tokenizer_hash: tokenizer.fingerprint(),
        };
        let mut file = AtomicFile::create(path)?;
        file.writer().write_all(&header.to_bytes()).map_err(|e| Error::io(path, e))?;
        Ok(ShardWriter { file, path: path.to_path_buf(), header, eos })
    }

    /// Appends one document's ids and an end-of-text.
    pub fn push_document(&mut self, ids: &[u32]) -> Result<()> {
        let width = self.header.width as usize;
        let mut bytes = Vec::with_capacity((ids.len() + 1) * width);
        for &id in ids.iter().chain(std::iter::once(&self.eos)) {
            debug_assert!(id < self.header.vocab_size);
            bytes.extend_from_slice(&id.to_le_bytes()[..width]);
        }
        self.file.writer().write_all(&bytes).map_err(|e| Error::io(&self.path, e))?;
        self.header.tokens += ids.len() as u64 + 1;
        self.header.documents += 1;
        Ok(())
    }

    /// Tokens written so far.
    pub fn tokens(&self) -> u64 {
        self.header.tokens
    }

    /// Writes the final header and moves the file into place.
    pub fn finish(mut self) -> Result<ShardHeader> {
        self.file.patch(0, &self.header.to_bytes())?;
        self.file.commit()?;
        Ok(self.header)
    }
}

/// Tokenizes documents into numbered shards `{stem}-00000.bin`, ... of at
/// most about `max_tokens` each (a document is never split across shards),
/// encoding in parallel batches on the current rayon pool.
pub struct ShardSetWriter<'t> {
    tokenizer: &'t Tokenizer,
    dir: PathBuf,
    stem: String,
    max_tokens: u64,
    pending: Vec<Document>,
    pending_bytes: usize,
    current: Option<ShardWriter>,
    done: Vec<PathBuf>,
}

/// Text buffered before a parallel encode.
const BATCH_BYTES: usize = 4 << 20;

impl<'t> ShardSetWriter<'t> {
    pub fn new(tokenizer: &'t Tokenizer, dir: impl Into<PathBuf>, stem: &str, max_tokens: u64) -> Self {
        ShardSetWriter {
            tokenizer,
            dir: dir.into(),
            stem: stem.to_string(),
            max_tokens: max_tokens.max(1),
            pending: Vec::new(),
            pending_bytes: 0,
            current: None,
            done: Vec::new(),
        }
    }

    pub fn push(&mut self, doc: Document) -> Result<()> {
        self.pending_bytes += doc.text.len();
        self.pending.push(doc);
        if self.pending_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let texts: Vec<&str> = self.pending.iter().map(|d| d.text.as_str()).collect();
        let encoded = self.tokenizer.encode_batch(&texts);
        for ids in encoded {
            if self.current.as_ref().is_some_and(|s| s.tokens() >= self.max_tokens) {
                self.finish_current()?;
            }
            if self.current.is_none() {
                let path = self.dir.join(format!("{}-{:05}.bin", self.stem, self.done.len()));
                self.current = Some(ShardWriter::create(path, self.tokenizer)?);
            }
            self.current.as_mut().expect("just created").push_document(&ids)?;
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    fn finish_current(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            let path = w.path.clone();
            w.finish()?;
            self.done.push(path);
        }
        Ok(())
    }

    /// Writes what is pending and returns the shard paths in order.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.flush()?;
        self.finish_current()?;
        Ok(std::mem::take(&mut self.done))
    }
}
