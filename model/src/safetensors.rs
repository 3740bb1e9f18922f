//! Reading and writing the safetensors format (as Hugging Face's `safetensors` package
//! does): an 8-byte little-endian header length, a JSON header mapping names to
//! `{dtype, shape, data_offsets}` (plus optional `__metadata__` strings), padding to 8
//! bytes, then the raw little-endian data. Only F32 is produced; F32 and F64 are read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A named f32 tensor in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Debug)]
pub enum SafetensorsError {
    Io(std::io::Error),
    /// The file is not valid safetensors; the message says why.
    Format(String),
}

impl fmt::Display for SafetensorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SafetensorsError::Io(e) => write!(f, "{e}"),
            SafetensorsError::Format(m) => write!(f, "invalid safetensors data: {m}"),
        }
    }
}

impl std::error::Error for SafetensorsError {}

fn bad(msg: impl Into<String>) -> SafetensorsError {
    SafetensorsError::Format(msg.into())
}

/// Serialises tensors (sorted by name) and string metadata.
pub fn to_bytes(tensors: &BTreeMap<String, HostTensor>, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("strings serialise"));
    }
    let mut offset = 0usize;
    for (name, t) in tensors {
        let len = t.data.len() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + len] }),
        );
        offset += len;
    }
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json serialises");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for t in tensors.values() {
        for x in &t.data {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// Parses safetensors bytes into tensors (converted to f32) and metadata, checking every
/// offset, shape and length so that a truncated or corrupt file gives a clear error.
pub type Parsed = (BTreeMap<String, HostTensor>, BTreeMap<String, String>);

pub fn from_bytes(bytes: &[u8]) -> Result<Parsed, SafetensorsError> {
    if bytes.len() < 8 {
        return Err(bad(format!("{} bytes is too short for a header", bytes.len())));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let body_start = 8usize
        .checked_add(n)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad(format!("header length {n} exceeds the file ({} bytes): truncated?", bytes.len())))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..body_start]).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let body = &bytes[body_start..];
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, v) in header {
        if name == "__metadata__" {
            metadata = serde_json::from_value(v).map_err(|e| bad(format!("__metadata__: {e}")))?;
            continue;
        }
        let dtype = v["dtype"].as_str().ok_or_else(|| bad(format!("{name}: no dtype")))?;
        let shape: Vec<usize> =
            serde_json::from_value(v["shape"].clone()).map_err(|e| bad(format!("{name}: shape: {e}")))?;
        let offs: [usize; 2] =
            serde_json::from_value(v["data_offsets"].clone()).map_err(|e| bad(format!("{name}: data_offsets: {e}")))?;
        let width = match dtype {
            "F32" => 4,
            "F64" => 8,
            other => return Err(bad(format!("{name}: unsupported dtype {other}"))),
        };
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("{name}: shape overflows")))?;
        if offs[0] > offs[1] || offs[1] > body.len() {
            return Err(bad(format!(
                "{name}: data {}..{} outside the {}-byte body: truncated?",
                offs[0],
                offs[1],
                body.len()
            )));
        }
        if offs[1] - offs[0] != numel * width {
            return Err(bad(format!("{name}: {} bytes for shape {shape:?} of {dtype}", offs[1] - offs[0])));
        }
        let raw = &body[offs[0]..offs[1]];
        let data = if width == 4 {
            raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
        } else {
            raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
        };
        tensors.insert(name, HostTensor { shape, data });
    }
    Ok((tensors, metadata))
}

pub fn read(path: &Path) -> Result<Parsed, SafetensorsError> {
    let bytes = std::fs::read(path).map_err(SafetensorsError::Io)?;
    from_bytes(&bytes).map_err(|e| match e {
        SafetensorsError::Format(m) => bad(format!("{}: {m}", path.display())),
        io => io,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, HostTensor> {
        let mut t = BTreeMap::new();
        t.insert("a.weight".into(), HostTensor { shape: vec![2, 3], data: vec![1.0, -2.0, 3.5, 0.0, 1e-8, 7.0] });
        t.insert("b".into(), HostTensor { shape: vec![], data: vec![0.25] });
        t
    }

    #[test]
    fn round_trip_and_layout() {
        let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
        let bytes = to_bytes(&sample(), &meta);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0, "header padded to 8 bytes");
        assert_eq!(bytes.len(), 8 + n + 7 * 4);
        let (t, m) = from_bytes(&bytes).unwrap();
        assert_eq!(t, sample());
        assert_eq!(m, meta);
    }

    #[test]
    fn truncation_and_corruption_are_reported() {
        let bytes = to_bytes(&sample(), &BTreeMap::new());
        for cut in [0, 4, 12, bytes.len() - 1] {
            let err = from_bytes(&bytes[..cut]).unwrap_err().to_string();
            assert!(err.contains("invalid safetensors"), "{err}");
        }
        let mut garbled = bytes.clone();
        garbled[9] = b'!';
        assert!(from_bytes(&garbled).is_err());
    }
}
