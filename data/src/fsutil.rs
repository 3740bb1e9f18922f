//! Atomic file writes: a reader sees either the old file or the complete
//! new one, never a torn write, even if the process dies mid-way.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file written under a temporary name and renamed into place by
/// [`commit`](AtomicFile::commit). Dropped uncommitted, it is removed.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> Result<Self> {
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        // Unique per process and per call: concurrent writers of one destination (threads
        // or processes preparing the same cache) must not share a temporary file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut name = dest.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}-{n}.tmp", std::process::id()));
        let tmp = dest.with_file_name(name);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile { tmp, dest: dest.to_path_buf(), out: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// The buffered writer, positioned where the last write ended.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("present until commit")
    }

    /// Overwrites `bytes` at `offset` (for headers known only at the end)
    /// and returns to the end of the file.
    pub fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp.clone();
        let w = self.writer();
        (|| {
            let end = w.stream_position()?;
            w.seek(std::io::SeekFrom::Start(offset))?;
            w.write_all(bytes)?;
            w.seek(std::io::SeekFrom::Start(end))?;
            Ok(())
        })()
        .map_err(|e| Error::io(&tmp, e))
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let out = self.out.take().expect("present until commit");
        let file = out.into_inner().map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        // Make the rename itself durable.
        if let Some(dir) = self.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.writer().write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_files_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/x.bin");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.writer().write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 0);
        let mut f = AtomicFile::create(&dest).unwrap();
        f.writer().write_all(b"0123456789").unwrap();
        f.patch(2, b"ab").unwrap();
        f.writer().write_all(b"!").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"01ab456789!");
    }
}
