//! The run lock: a file next to the database (`<db>.lock`) that one writing
//! run holds at a time, so that a cron job starting while the last one still
//! runs never ingests the same mail twice.
//!
//! It is an advisory `flock`-style lock on an open file: the kernel drops it
//! when the process ends, however it ends (`kill -9` included), so a stale
//! lock file never blocks a later run.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Held while a run writes; released on drop.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

/// Whether another process holds the lock.
#[derive(Debug)]
pub enum Acquired {
    Held(RunLock),
    Busy,
}

impl RunLock {
    /// The lock file for a database.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Take the lock if it is free.
    pub fn try_acquire(db: &Path) -> std::io::Result<Acquired> {
        let (file, path) = open(db)?;
        match file.try_lock() {
            Ok(()) => Ok(Acquired::Held(RunLock { _file: file, path })),
            Err(TryLockError::WouldBlock) => Ok(Acquired::Busy),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Take the lock, waiting for as long as another run holds it.
    pub fn acquire(db: &Path) -> std::io::Result<RunLock> {
        let (file, path) = open(db)?;
        file.lock()?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open(db: &Path) -> std::io::Result<(File, PathBuf)> {
    let path = RunLock::path_for(db);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.sqlite");
        let Acquired::Held(held) = RunLock::try_acquire(&db).unwrap() else {
            panic!("a fresh lock is free");
        };
        assert_eq!(held.path(), dir.path().join("x.sqlite.lock"));
        assert!(matches!(RunLock::try_acquire(&db).unwrap(), Acquired::Busy));
        drop(held);
        assert!(matches!(
            RunLock::try_acquire(&db).unwrap(),
            Acquired::Held(_)
        ));
    }
}
