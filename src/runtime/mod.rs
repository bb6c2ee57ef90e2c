//! ctb's private runtime files: the directory, each server's files in it,
//! and the kernel locks kept there (the daemon's lock, the spawn lock).
//!
//! The lowest layer with I/O: may call `util/` only; used by `tmux/` (the
//! control client takes the spawn lock while attaching) and `daemon/`.
//! Servers are named by their socket path, never by a `tmux::Server`.

mod dir;
mod flock;
mod lock;
mod spawn_lock;

pub use dir::{
    check_private_dir, lock_dir, lock_dir_path, runtime_dir, runtime_dir_path, server_key, RuntimeDirError, ServerFiles,
};
pub use flock::LockError;
pub use lock::{find_owner, DaemonLock, Owner};
pub use spawn_lock::{open_log, AttachGate, GateError, PaneLock, RunLock, SpawnLock, LOCK_DEADLINE};
