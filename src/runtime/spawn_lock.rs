//! The per-server spawn lock: serializes the ctb processes that start a
//! daemon or attach a control client (see docs/tmux-3.3a-crash.md).

use std::path::Path;

use anyhow::{Context, Result};

use super::dir::{runtime_dir, ServerFiles};

/// Serializes the `session-create`s and `daemon start`s of one server, on
/// the daemon's log file (which outlives daemons anyway): exactly one of
/// many concurrent callers starts the daemon, and none creates a session
/// while the daemon's control client is attaching (a window linked at that
/// moment crashes tmux 3.3a; see docs/tmux-3.3a-crash.md).
pub struct SpawnLock {
    pub files: ServerFiles,
    _log: std::fs::File,
}

impl SpawnLock {
    pub fn take(socket: &Path) -> Result<SpawnLock> {
        let dir = runtime_dir()?;
        let files = ServerFiles::new(&dir, socket);
        let log = open_log(&files.log)?;
        rustix::fs::flock(&log, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(SpawnLock { files, _log: log })
    }
}

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
