//! Per-server `flock` files with a deadline: the spawn lock and the attach
//! gate (see [`SpawnLock`](super::SpawnLock), [`AttachGate`](super::AttachGate)).
//!
//! A waiter never blocks an async thread and never waits past its
//! deadline: the blocking `flock(2)` runs on a helper thread, and a lock
//! that thread obtains after its waiter gave up is dropped at once (the
//! channel to the waiter is closed). A lock is held on the file's open
//! description and dropped by the kernel when the holder dies, even by
//! SIGKILL. Lock files may be removed (runtime-dir cleanup), so a lock is
//! only kept if the path still names the locked inode.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};

/// Shared (many holders) or exclusive (one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Shared,
    Exclusive,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} of this tmux server is held by another ctb process (waited {secs}s; a stopped `ctb`?): {path}")]
    Timeout { what: &'static str, secs: u64, path: PathBuf },
    #[error("cannot lock {path}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A held lock; released when dropped. When no one else holds or waits
/// for it then, its file is removed, so lock files do not pile up.
#[derive(Debug)]
pub struct Held {
    file: Option<File>,
    path: PathBuf,
}

impl Held {
    fn new(file: File, path: &Path) -> Held {
        Held { file: Some(file), path: path.to_owned() }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.file.take());
        // Removed only while held exclusively: a process that opened the
        // old file and locks it afterwards sees it is gone and retries.
        if let Ok(Some(file)) = try_lock(&self.path, Kind::Exclusive) {
            let _ = std::fs::remove_file(&self.path);
            drop(file);
        }
    }
}

/// Opens (creating, 0600) a lock file, never through a symlink.
pub(super) fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
}

/// Whether the open `file` is still the one `path` names.
pub fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn op(kind: Kind, block: bool) -> FlockOperation {
    match (kind, block) {
        (Kind::Shared, true) => FlockOperation::LockShared,
        (Kind::Shared, false) => FlockOperation::NonBlockingLockShared,
        (Kind::Exclusive, true) => FlockOperation::LockExclusive,
        (Kind::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
    }
}

/// Blocks until the lock is held on the file `path` names.
fn lock_blocking(path: &Path, kind: Kind) -> std::io::Result<File> {
    loop {
        let file = open(path)?;
        flock(&file, op(kind, true))?;
        if same_file(&file, path) {
            return Ok(file);
        }
    }
}

/// Takes the lock at once if it is free.
fn try_lock(path: &Path, kind: Kind) -> std::io::Result<Option<File>> {
    let file = open(path)?;
    match flock(&file, op(kind, false)) {
        Ok(()) if same_file(&file, path) => Ok(Some(file)),
        Ok(()) => Ok(None),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Starts a helper thread that blocks on the lock and hands it to `send`;
/// if the waiter gave up, `send` fails and the lock is dropped there.
fn wait_on_thread(path: &Path, kind: Kind, send: impl FnOnce(std::io::Result<File>) + Send + 'static) {
    let path = path.to_owned();
    std::thread::spawn(move || send(lock_blocking(&path, kind)));
}

/// Takes the lock, waiting at most `deadline` (blocking this thread).
pub fn take(path: &Path, kind: Kind, deadline: Duration, what: &'static str) -> Result<Held, LockError> {
    let io = |source| LockError::Io { path: path.to_owned(), source };
    if let Some(file) = try_lock(path, kind).map_err(io)? {
        return Ok(Held::new(file, path));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    wait_on_thread(path, kind, move |r| {
        let _ = tx.send(r);
    });
    match rx.recv_timeout(deadline) {
        Ok(r) => r.map(|file| Held::new(file, path)).map_err(io),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(LockError::Timeout { what, secs: deadline.as_secs(), path: path.to_owned() })
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(io(std::io::Error::other("lock thread ended"))),
    }
}

/// [`take`] for async callers: never blocks the runtime's thread.
pub async fn take_async(path: &Path, kind: Kind, deadline: Duration, what: &'static str) -> Result<Held, LockError> {
    let io = |source| LockError::Io { path: path.to_owned(), source };
    if let Some(file) = try_lock(path, kind).map_err(io)? {
        return Ok(Held::new(file, path));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    wait_on_thread(path, kind, move |r| {
        let _ = tx.send(r);
    });
    match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(r)) => r.map(|file| Held::new(file, path)).map_err(io),
        Ok(Err(_)) => Err(io(std::io::Error::other("lock thread ended"))),
        Err(_) => Err(LockError::Timeout { what, secs: deadline.as_secs(), path: path.to_owned() }),
    }
}
