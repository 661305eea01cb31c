//! The file operations the log performs, behind a trait so tests can fail
//! the N-th write or fsync ([`crate::fault`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// One segment or sidecar file, written and read at explicit offsets.
pub trait LogFile: Send + Sync + std::fmt::Debug {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: the file's bytes (and size) reach stable storage.
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
}

/// The directory operations of the log.
pub trait LogFs: Send + Sync + std::fmt::Debug {
    /// Creates a new file (failing if it exists), readable and writable.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn LogFile>>;
    fn open(&self, path: &Path, writable: bool) -> io::Result<Arc<dyn LogFile>>;
    /// Makes created, renamed and removed names in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(File);

impl LogFile for StdFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl LogFs for StdFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(StdFile(f)))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Arc<dyn LogFile>> {
        let f = OpenOptions::new().read(true).write(writable).open(path)?;
        Ok(Arc::new(StdFile(f)))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            if let Some(name) = e?.file_name().to_str() {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }
}

/// The one way the log creates a complete file durably: write `name.tmp`,
/// fsync it, rename it over `name`, fsync the directory. After a crash
/// `name` is either absent, the old file, or the whole new one.
pub fn write_durable(fs: &dyn LogFs, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_durable_with(fs, dir, name, &mut |out| out.write_all(bytes))
}

/// [`write_durable`] for a file produced piece by piece (a location run
/// of millions of entries), through a buffered writer.
pub(crate) fn write_durable_with(
    fs: &dyn LogFs,
    dir: &Path,
    name: &str,
    produce: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    match fs.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let f = fs.create(&tmp)?;
    {
        let mut out = io::BufWriter::with_capacity(1 << 20, FileWriter { file: &*f, pos: 0 });
        produce(&mut out)?;
        io::Write::flush(&mut out)?;
    }
    f.sync_data()?;
    drop(f);
    fs.rename(&tmp, &target)?;
    fs.sync_dir(dir)
}

/// Appends through a [`LogFile`]'s positioned writes.
struct FileWriter<'a> {
    file: &'a dyn LogFile,
    pos: u64,
}

impl io::Write for FileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.pos)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A positional reader over a [`LogFile`], for streaming a segment.
pub(crate) struct FileReader<'a> {
    file: &'a dyn LogFile,
    pos: u64,
    len: u64,
}

impl<'a> FileReader<'a> {
    pub(crate) fn new(file: &'a dyn LogFile, len: u64) -> Self {
        FileReader { file, pos: 0, len }
    }
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        write_durable(&StdFs, dir.path(), "a", b"first").unwrap();
        write_durable(&StdFs, dir.path(), "a", b"second!").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"second!");
        let names = StdFs.list(dir.path()).unwrap();
        assert_eq!(names, vec!["a".to_string()], "no temp file left behind");
    }
}
