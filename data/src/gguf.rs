//! GGUF (versions 2 and 3): header, metadata key/values and tensor
//! descriptions. Tensor data is not read; [`GgufFile::data_offset`] says
//! where it starts so a model loader can map it.
//!
//! Layout (little-endian): magic "GGUF", version u32, tensor count u64,
//! metadata count u64, the key/values (key string, type u32, value), the
//! tensor infos (name, n_dims u32, dims u64 × n, type u32, offset u64),
//! then padding to `general.alignment` (default 32). A string is a u64
//! length and UTF-8 bytes; an array is an element type u32, a u64 count and
//! the elements. Every length is checked against the bytes that remain
//! before anything is allocated, so arbitrary input cannot panic or
//! exhaust memory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays of arrays are legal; real files nest at most once.
const MAX_NESTING: u32 = 8;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// The element type tag (see [`GgufValue::type_tag`]) and the elements.
    Array(u32, Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    /// The GGUF type tag of this value.
    pub fn type_tag(&self) -> u32 {
        match self {
            GgufValue::U8(_) => 0,
            GgufValue::I8(_) => 1,
            GgufValue::U16(_) => 2,
            GgufValue::I16(_) => 3,
            GgufValue::U32(_) => 4,
            GgufValue::I32(_) => 5,
            GgufValue::F32(_) => 6,
            GgufValue::Bool(_) => 7,
            GgufValue::String(_) => 8,
            GgufValue::Array(..) => 9,
            GgufValue::U64(_) => 10,
            GgufValue::I64(_) => 11,
            GgufValue::F64(_) => 12,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(_, items) => Some(items),
            _ => None,
        }
    }

    /// Any non-negative integer value as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// One tensor's description.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    /// The ggml type id (0 = F32, 1 = F16, 2 = Q4_0, 3 = Q4_1, 8 = Q8_0, ...).
    pub ggml_type: u32,
    /// Offset of the data from [`GgufFile::data_offset`].
    pub offset: u64,
}

/// A parsed GGUF header.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<GgufTensorInfo>,
    /// Absolute file offset where tensor data begins.
    pub data_offset: u64,
}

impl GgufFile {
    /// Reads the header of the GGUF file at `path` (the file is mapped, so
    /// only the header pages are read).
    pub fn read(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and dropped before returning; a
        // concurrent truncation could fault, as with any mapped reader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::parse_named(&map, path)
    }

    /// Parses a GGUF header from bytes.
    pub fn parse(bytes: &[u8]) -> Result<GgufFile> {
        Self::parse_named(bytes, Path::new("<memory>"))
    }

    fn parse_named(bytes: &[u8], path: &Path) -> Result<GgufFile> {
        let mut c = Cursor { bytes, pos: 0, path };
        if c.take(4)? != MAGIC {
            return Err(c.error_at(0, "not a GGUF file (bad magic)"));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(c.error_at(4, format!("unsupported GGUF version {version}")));
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        // A key/value takes at least 12 bytes, a tensor info at least 28.
        let mut metadata = Vec::with_capacity(c.bounded_count(n_kv, 12)?);
        for _ in 0..n_kv {
            let key = c.string()?;
            let tag = c.u32()?;
            let value = c.value(tag, 0)?;
            metadata.push((key, value));
        }
        let mut tensors = Vec::with_capacity(c.bounded_count(n_tensors, 28)?);
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()?;
            if n_dims > 8 {
                return Err(c.error(format!("tensor {name:?} has {n_dims} dimensions")));
            }
            let dims = (0..n_dims).map(|_| c.u64()).collect::<Result<Vec<_>>>()?;
            tensors.push(GgufTensorInfo { name, dims, ggml_type: c.u32()?, offset: c.u64()? });
        }
        let file = GgufFile { version, metadata, tensors, data_offset: 0 };
        let alignment = match file.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| c.error("general.alignment is not a power of two"))?,
        };
        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        Ok(GgufFile { data_offset, ..file })
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Serialises a GGUF v3 file with the given metadata and no tensors (used
/// to build test fixtures and small tokenizer-only files).
pub fn write_metadata_only(metadata: &[(String, GgufValue)]) -> Vec<u8> {
    write(metadata, &[])
}

/// One tensor for [`write`]: name, ggml dims (innermost first), ggml type id and data.
pub struct TensorData {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub bytes: Vec<u8>,
}

/// Serialises a GGUF v3 file with metadata and tensors, each tensor's data at the
/// next 32-byte aligned offset (used to build model fixtures in tests).
pub fn write(metadata: &[(String, GgufValue)], tensors: &[TensorData]) -> Vec<u8> {
    let align = |n: usize| n.div_ceil(DEFAULT_ALIGNMENT as usize) * DEFAULT_ALIGNMENT as usize;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_string(&mut out, key);
        out.extend_from_slice(&value.type_tag().to_le_bytes());
        put_value(&mut out, value);
    }
    let mut offset = 0;
    for t in tensors {
        put_string(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset = align(offset + t.bytes.len());
    }
    for t in tensors {
        out.resize(align(out.len()), 0);
        out.extend_from_slice(&t.bytes);
    }
    out.resize(align(out.len()), 0);
    out
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_string(out, s),
        GgufValue::Array(tag, items) => {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn error_at(&self, offset: usize, message: impl Into<String>) -> Error {
        Error::Gguf { path: PathBuf::from(self.path), offset: offset as u64, message: message.into() }
    }

    fn error(&self, message: impl Into<String>) -> Error {
        self.error_at(self.pos, message)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = self.bytes.len() - self.pos;
        if n > left as u64 {
            return Err(self.error(format!("needs {n} bytes, {left} left (truncated file?)")));
        }
        let out = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N as u64)?.try_into().expect("took N bytes"))
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// `count` items of at least `min_size` bytes must fit in what is left.
    fn bounded_count(&self, count: u64, min_size: u64) -> Result<usize> {
        let left = (self.bytes.len() - self.pos) as u64;
        if count.saturating_mul(min_size) > left {
            return Err(self.error(format!("count {count} cannot fit in the {left} bytes left (truncated file?)")));
        }
        Ok(count as usize)
    }

    fn string(&mut self) -> Result<String> {
        let start = self.pos;
        let len = self.u64()?;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.error_at(start, "string is not UTF-8"))
    }

    fn value(&mut self, tag: u32, depth: u32) -> Result<GgufValue> {
        Ok(match tag {
            0 => GgufValue::U8(self.array::<1>()?[0]),
            1 => GgufValue::I8(i8::from_le_bytes(self.array()?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array()?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array()?)),
            4 => GgufValue::U32(self.u32()?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array()?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array()?)),
            7 => match self.array::<1>()?[0] {
                b @ (0 | 1) => GgufValue::Bool(b == 1),
                b => return Err(self.error_at(self.pos - 1, format!("bool byte {b}"))),
            },
            8 => GgufValue::String(self.string()?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(self.error("arrays nested too deeply"));
                }
                let elem = self.u32()?;
                let count = self.u64()?;
                let min_size = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    _ => return Err(self.error(format!("unknown array element type {elem}"))),
                };
                let mut items = Vec::with_capacity(self.bounded_count(count, min_size)?);
                for _ in 0..count {
                    items.push(self.value(elem, depth + 1)?);
                }
                GgufValue::Array(elem, items)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array()?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array()?)),
            _ => return Err(self.error(format!("unknown value type {tag}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_type_round_trips() {
        let s = |x: &str| GgufValue::String(x.into());
        let metadata: Vec<(String, GgufValue)> = vec![
            ("u8".into(), GgufValue::U8(7)),
            ("i8".into(), GgufValue::I8(-7)),
            ("u16".into(), GgufValue::U16(700)),
            ("i16".into(), GgufValue::I16(-700)),
            ("u32".into(), GgufValue::U32(70_000)),
            ("i32".into(), GgufValue::I32(-70_000)),
            ("f32".into(), GgufValue::F32(1.5)),
            ("bool".into(), GgufValue::Bool(true)),
            ("str".into(), s("héllo")),
            ("arr".into(), GgufValue::Array(8, vec![s("a"), s("b c")])),
            ("nested".into(), GgufValue::Array(9, vec![GgufValue::Array(4, vec![GgufValue::U32(1)])])),
            ("u64".into(), GgufValue::U64(1 << 40)),
            ("i64".into(), GgufValue::I64(-(1 << 40))),
            ("f64".into(), GgufValue::F64(-2.25)),
        ];
        let bytes = write_metadata_only(&metadata);
        let file = GgufFile::parse(&bytes).unwrap();
        assert_eq!(file.version, 3);
        assert_eq!(file.metadata, metadata);
        assert_eq!(file.data_offset, bytes.len() as u64);
        assert_eq!(file.get("u32").and_then(GgufValue::as_u64), Some(70_000));
    }

    #[test]
    fn damage_is_reported_with_its_offset() {
        let bytes = write_metadata_only(&[("k".into(), GgufValue::String("value".into()))]);
        let err = GgufFile::parse(&bytes[..30]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(GgufFile::parse(&bad).unwrap_err().to_string().contains("magic"));
        // A huge array count is refused before allocating.
        let mut huge = write_metadata_only(&[("k".into(), GgufValue::Array(0, vec![]))]);
        huge[24 + 9 + 4 + 4..24 + 9 + 4 + 12].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(GgufFile::parse(&huge).unwrap_err().to_string().contains("cannot fit"));
    }
}
