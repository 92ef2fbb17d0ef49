//! A shared, bounded cache of open segment files, so that the number of partitions is limited by
//! the disk rather than by file descriptors.
//!
//! Every segment's `.log` file is reached through a [`CachedFile`]: the file is opened on first
//! use and kept open until it is the least recently used one and the cache is over its cap.
//! Index files are not kept open at all (their entries live in memory; the files are written at
//! a seal or a clean close).
//!
//! Closing a descriptor never loses data: appended bytes live in the page cache whether or not a
//! descriptor is open, and an fsync through a descriptor opened later writes them back (Linux
//! keeps writeback errors per file and reports an unseen one to the next fsync from any
//! descriptor, since 4.16).
//!
//! The cap is soft by the number of files in use at one moment: a file evicted while a reader
//! still holds it is closed when that reader lets go.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{IoContext, LogError};

/// Open segment files shared by many logs, at most `cap` of them kept open.
#[derive(Debug)]
pub struct FileCache {
    cap: usize,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    opens: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Open files by id, with the tick of their last use.
    open: HashMap<u64, (Arc<File>, u64)>,
    /// Ids by last use, oldest first.
    by_use: BTreeMap<u64, u64>,
    tick: u64,
}

impl Inner {
    fn touch(&mut self, id: u64) -> Option<Arc<File>> {
        self.tick += 1;
        let tick = self.tick;
        let (file, used) = self.open.get_mut(&id)?;
        let _ = self.by_use.remove(used);
        *used = tick;
        let _ = self.by_use.insert(tick, id);
        Some(file.clone())
    }

    fn insert(&mut self, id: u64, file: Arc<File>, cap: usize) {
        self.tick += 1;
        if let Some((_, used)) = self.open.insert(id, (file, self.tick)) {
            let _ = self.by_use.remove(&used);
        }
        let _ = self.by_use.insert(self.tick, id);
        while self.open.len() > cap {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            let _ = self.open.remove(&oldest);
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some((_, used)) = self.open.remove(&id) {
            let _ = self.by_use.remove(&used);
        }
    }
}

impl FileCache {
    /// A cache keeping at most `cap` files open (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            inner: Mutex::default(),
            next_id: AtomicU64::new(0),
            opens: AtomicU64::new(0),
        })
    }

    /// A cache that never closes a file on its own (one log opened by a tool or a test).
    pub fn unbounded() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// The most files it keeps open.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// How many files it holds open now.
    pub fn open_files(&self) -> usize {
        self.lock().open.len()
    }

    /// How many times it has opened a file (a miss), since it was made.
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock guards only map updates that cannot panic half-way; a poisoned one is whole.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers an existing file, not opened until its first use.
    pub(crate) fn lazy(self: &Arc<Self>, path: PathBuf) -> CachedFile {
        CachedFile {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            path,
            cache: self.clone(),
        }
    }

    /// Registers a file just opened (or created) by the caller, keeping it open.
    pub(crate) fn adopt(self: &Arc<Self>, path: PathBuf, file: File) -> CachedFile {
        let cached = self.lazy(path);
        self.lock().insert(cached.id, Arc::new(file), self.cap);
        cached
    }
}

/// One file reached through a [`FileCache`]; dropping it closes the file if it is open.
#[derive(Debug)]
pub(crate) struct CachedFile {
    id: u64,
    path: PathBuf,
    cache: Arc<FileCache>,
}

impl CachedFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, opened (read and write) if it was not.
    pub(crate) fn get(&self) -> Result<Arc<File>, LogError> {
        if let Some(file) = self.cache.lock().touch(self.id) {
            return Ok(file);
        }
        // Opened outside the lock: another log's lookups need not wait for this system call.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .at(&self.path)?;
        let _ = self.cache.opens.fetch_add(1, Ordering::Relaxed);
        let file = Arc::new(file);
        self.cache
            .lock()
            .insert(self.id, file.clone(), self.cache.cap);
        Ok(file)
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        self.cache.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::FileExt as _;

    #[test]
    fn keeps_at_most_cap_files_open_and_reopens_on_demand() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let cache = FileCache::new(2);
        let files: Vec<CachedFile> = (0..5)
            .map(|i| {
                let path = dir.path().join(format!("{i}.log"));
                let mut file = File::create(&path)?;
                file.write_all(format!("file {i}").as_bytes())?;
                Ok(cache.lazy(path))
            })
            .collect::<Result<_, std::io::Error>>()?;
        assert_eq!(cache.open_files(), 0, "registering opens nothing");
        for round in 0..3 {
            for (i, cached) in files.iter().enumerate() {
                let mut buf = [0u8; 6];
                cached.get()?.read_exact_at(&mut buf, 0)?;
                assert_eq!(&buf, format!("file {i}").as_bytes(), "round {round}");
                assert!(cache.open_files() <= 2);
            }
        }
        assert_eq!(cache.opens(), 15, "five files, two slots: every use a miss");
        // The most recently used stays open; using it again opens nothing.
        let _ = files.get(4).ok_or("no file")?.get()?;
        assert_eq!(cache.opens(), 15);
        drop(files);
        assert_eq!(cache.open_files(), 0, "dropping a file closes it");
        Ok(())
    }

    #[test]
    fn writes_through_a_reopened_file_land_where_they_belong()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = FileCache::new(1);
        let a = cache.adopt(dir.path().join("a"), File::create(dir.path().join("a"))?);
        let b = cache.adopt(dir.path().join("b"), File::create(dir.path().join("b"))?);
        assert_eq!(cache.open_files(), 1);
        a.get()?.write_all_at(b"hello", 0)?;
        b.get()?.write_all_at(b"world", 0)?;
        a.get()?.write_all_at(b"!", 5)?;
        a.get()?.sync_data()?;
        assert_eq!(std::fs::read(a.path())?, b"hello!");
        assert_eq!(std::fs::read(b.path())?, b"world");
        Ok(())
    }
}
