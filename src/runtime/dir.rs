//! ctb's private runtime directory and the per-server files in it.
//!
//! `$XDG_RUNTIME_DIR/ctb/`, else `/tmp/ctb-<uid>/`; created 0700 and
//! refused if it is a symlink, not ours, or open to group or others. Each
//! tmux server gets `<key>.lock` (the daemon's kernel lock, with its pid),
//! `<key>.sock` (its request socket) and `<key>.log`; `<key>` is derived
//! from the server's socket path, so two servers never share a daemon.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeDirError {
    #[error("runtime directory {0} is a symlink; refusing to use it")]
    Symlink(PathBuf),
    #[error("runtime directory {0} is not a directory")]
    NotDir(PathBuf),
    #[error("runtime directory {path} is owned by uid {owner}, not by you (uid {uid})")]
    NotOwned { path: PathBuf, owner: u32, uid: u32 },
    #[error("runtime directory {path} has mode {mode:o}; it must not be accessible to group or others (chmod 700)")]
    Mode { path: PathBuf, mode: u32 },
    #[error("cannot use runtime directory {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the daemon's socket path {0} is too long for a Unix socket; set XDG_RUNTIME_DIR to a shorter directory")]
    TooLong(PathBuf),
}

/// The runtime directory's location (not checked).
pub fn runtime_dir_path() -> PathBuf {
    // A relative XDG_RUNTIME_DIR is invalid and ignored (XDG base
    // directory spec).
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| Path::new(v).is_absolute()) {
        Some(x) => Path::new(&x).join("ctb"),
        None => PathBuf::from(format!("/tmp/ctb-{}", rustix::process::getuid().as_raw())),
    }
}

/// Where the spawn lock and the attach gate live: `/tmp/ctb-<uid>`, the
/// same for every ctb of this user whatever its `XDG_RUNTIME_DIR` (cron,
/// ssh and agents often run without one): the gate must exclude *every*
/// ctb attach and mutation on a server, or tmux 3.3a crashes.
pub fn lock_dir_path() -> PathBuf {
    PathBuf::from(format!("/tmp/ctb-{}", rustix::process::getuid().as_raw()))
}

/// Creates (if needed) and checks [`lock_dir_path`].
pub fn lock_dir() -> Result<PathBuf, RuntimeDirError> {
    ensure_private_dir(lock_dir_path())
}

/// Creates (if needed) and checks the runtime directory.
pub fn runtime_dir() -> Result<PathBuf, RuntimeDirError> {
    ensure_private_dir(runtime_dir_path())
}

/// Creates `path` (mode 0700) if needed, then checks it is private.
fn ensure_private_dir(path: PathBuf) -> Result<PathBuf, RuntimeDirError> {
    match fs::DirBuilder::new().mode(0o700).create(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(RuntimeDirError::Io { path, source }),
    }
    check_private_dir(&path)?;
    Ok(path)
}

/// Refuses a directory that is a symlink, not ours, or not private.
pub fn check_private_dir(path: &Path) -> Result<(), RuntimeDirError> {
    let md = fs::symlink_metadata(path).map_err(|source| RuntimeDirError::Io { path: path.into(), source })?;
    if md.file_type().is_symlink() {
        return Err(RuntimeDirError::Symlink(path.into()));
    }
    if !md.is_dir() {
        return Err(RuntimeDirError::NotDir(path.into()));
    }
    let uid = rustix::process::getuid().as_raw();
    if md.uid() != uid {
        return Err(RuntimeDirError::NotOwned { path: path.into(), owner: md.uid(), uid });
    }
    if md.mode() & 0o077 != 0 {
        return Err(RuntimeDirError::Mode { path: path.into(), mode: md.mode() & 0o7777 });
    }
    Ok(())
}

/// The files of one tmux server's daemon.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub lock: PathBuf,
    pub sock: PathBuf,
    pub log: PathBuf,
    /// The spawn lock (see `spawn_lock.rs`), in [`lock_dir_path`].
    pub spawn: PathBuf,
    /// The attach gate (see `spawn_lock.rs`), in [`lock_dir_path`].
    pub attach: PathBuf,
}

impl ServerFiles {
    /// The files for the server at `socket`. The readable part of the key
    /// is shortened so the request socket's path fits a Unix socket
    /// address; see [`ServerFiles::check`] for a directory too long even
    /// for that.
    pub fn new(dir: &Path, socket: &Path) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let fixed = dir.as_os_str().as_bytes().len() + "/-0123456789abcdef.sock".len();
        let key = server_key(socket, SUN_PATH_MAX.saturating_sub(fixed));
        ServerFiles {
            lock: dir.join(format!("{key}.lock")),
            sock: dir.join(format!("{key}.sock")),
            log: dir.join(format!("{key}.log")),
            spawn: lock_dir_path().join(format!("{}.spawn", server_key(socket, 40))),
            attach: lock_dir_path().join(format!("{}.attach", server_key(socket, 40))),
        }
    }
}

/// The longest path a Unix socket address holds (`sun_path` less its NUL).
const SUN_PATH_MAX: usize = 107;

impl ServerFiles {
    /// Fails if the request socket's path is too long to bind.
    pub fn check(&self) -> Result<(), RuntimeDirError> {
        use std::os::unix::ffi::OsStrExt;
        if self.sock.as_os_str().as_bytes().len() > SUN_PATH_MAX {
            return Err(RuntimeDirError::TooLong(self.sock.clone()));
        }
        Ok(())
    }
}

/// A file-name-safe key for a socket path: its last component (for people,
/// at most `max_label` characters) and a hash of the whole path (for
/// uniqueness).
pub fn server_key(socket: &Path, max_label: usize) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_os_str().as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let label: String = socket
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(max_label.min(40))
        .collect();
    format!("{label}-{h:016x}")
}
