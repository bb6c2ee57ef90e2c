//! The two per-server locks that keep ctb's own commands out of tmux
//! 3.3a's crash window (docs/tmux-3.3a-crash.md): a window linked or
//! unlinked anywhere while a control client attaches crashes the server.
//!
//! Both live in `/tmp/ctb-<uid>` (`dir::lock_dir_path`), shared by every
//! ctb of the user whatever its `XDG_RUNTIME_DIR`.
//!
//! - The *attach gate* (`<key>.attach`): every ctb control client attaches
//!   (daemon, `ctb watch`, re-anchoring) holding it exclusively, until its
//!   first reply; every ctb command that creates, kills or links sessions
//!   or windows holds it shared for the one tmux command that does it. So
//!   no ctb mutation runs while a ctb client attaches, and mutations never
//!   wait for each other. Neither is ever held while waiting for another
//!   process (only around one tmux command), so they cannot deadlock.
//! - The *spawn lock* (`<key>.spawn`): exclusive, held by `session-create`
//!   and `daemon start` while they look for the daemon and start one:
//!   exactly one of many concurrent callers starts it.
//!
//! Both wait with a deadline ([`LOCK_DEADLINE`]) and off the async thread.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::dir::{lock_dir, runtime_dir, ServerFiles};
use super::flock::{self, Held, Kind, LockError};

/// How long a ctb command waits for a lock another ctb process holds.
pub const LOCK_DEADLINE: Duration = Duration::from_secs(10);

/// Serializes the `session-create`s and `daemon start`s of one server.
pub struct SpawnLock {
    pub files: ServerFiles,
    _held: Held,
}

impl SpawnLock {
    pub fn take(socket: &Path) -> Result<SpawnLock> {
        let dir = runtime_dir()?;
        lock_dir()?;
        let files = ServerFiles::new(&dir, socket);
        let held = flock::take(&files.spawn, Kind::Exclusive, LOCK_DEADLINE, "the spawn lock")?;
        Ok(SpawnLock { files, _held: held })
    }
}

/// A hold on the attach gate (shared: a mutation; exclusive: an attach).
#[derive(Debug)]
pub struct AttachGate {
    _held: Held,
}

impl AttachGate {
    /// For a one-shot command that creates, kills or links sessions or
    /// windows: hold it across that one tmux command.
    pub fn mutation(socket: &Path) -> Result<AttachGate> {
        let dir = lock_dir()?;
        let files = ServerFiles::new(&dir, socket);
        Ok(AttachGate { _held: flock::take(&files.attach, Kind::Shared, LOCK_DEADLINE, "the attach gate")? })
    }

    /// [`AttachGate::mutation`] for async callers (the watcher).
    pub async fn mutation_async(socket: &Path) -> Result<AttachGate, GateError> {
        Self::take_async(socket, Kind::Shared).await
    }

    /// For a control client's attach, until its first reply.
    pub async fn attach_async(socket: &Path) -> Result<AttachGate, GateError> {
        Self::take_async(socket, Kind::Exclusive).await
    }

    async fn take_async(socket: &Path, kind: Kind) -> Result<AttachGate, GateError> {
        let dir = lock_dir()?;
        let files = ServerFiles::new(&dir, socket);
        Ok(AttachGate { _held: flock::take_async(&files.attach, kind, LOCK_DEADLINE, "the attach gate").await? })
    }
}

/// Why the attach gate was not taken.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Dir(#[from] super::RuntimeDirError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// Opens (creating) a daemon log for appending, never through a symlink.
pub fn open_log(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Serializes starting, joining and stopping the output relay of one pane
/// (`agent/relay.rs`): a subscriber joining never races the relay's exit.
#[derive(Debug)]
pub struct PaneLock {
    _held: Held,
}

impl PaneLock {
    /// The lock of pane `%pane` on the server at `socket`.
    pub async fn take(socket: &Path, pane: u32) -> Result<PaneLock, GateError> {
        let dir = lock_dir()?;
        let path = dir.join(format!("{}.pane{pane}.relay", super::dir::server_key(socket, 40)));
        Ok(PaneLock { _held: flock::take_async(&path, Kind::Exclusive, LOCK_DEADLINE, "the pane's relay lock").await? })
    }
}

/// One `ctb run` at a time on a pane: held from typing the command line
/// until its end marker (a second line typed meanwhile would be echoed
/// into the first one's output).
#[derive(Debug)]
pub struct RunLock {
    _held: Held,
}

impl RunLock {
    /// Waits at most `deadline` for pane `%pane`'s run lock.
    pub async fn take(socket: &Path, pane: u32, deadline: Duration) -> Result<RunLock, GateError> {
        let dir = lock_dir()?;
        let path = dir.join(format!("{}.pane{pane}.run", super::dir::server_key(socket, 40)));
        Ok(RunLock { _held: flock::take_async(&path, Kind::Exclusive, deadline, "the pane's run lock").await? })
    }
}
