//! The daemon's kernel lock: one daemon per tmux server.
//!
//! An exclusive `flock` on `<key>.lock`, held for the daemon's whole life;
//! the kernel drops it when the process dies, even by SIGKILL, so a stale
//! file never blocks the next daemon. The file holds the daemon's pid and
//! start time, which are only trusted after proving (via `/proc/PID/fdinfo`)
//! that this very pid holds the exclusive flock on this very file.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::flock::{open, same_file};

/// A held daemon lock; the file is removed when the daemon exits cleanly.
#[derive(Debug)]
pub struct DaemonLock {
    file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock, waiting while another daemon holds it (a daemon that
    /// is shutting down releases it within milliseconds).
    pub fn acquire(path: &Path) -> std::io::Result<DaemonLock> {
        loop {
            let file = open(path)?;
            flock(&file, FlockOperation::LockExclusive)?;
            // The previous holder may have unlinked the file before
            // releasing it: then our lock is on a dead inode. Start over.
            if same_file(&file, path) {
                return Ok(DaemonLock { file, path: path.to_owned() });
            }
        }
    }

    /// Takes the lock only if it is free.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<DaemonLock>> {
        let file = match open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) if same_file(&file, path) => Ok(Some(DaemonLock { file, path: path.to_owned() })),
            Ok(()) => Ok(None),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records who holds the lock: written over the old text, then cut to
    /// length (never truncated first, so a reader never sees it empty).
    pub fn write_owner(&mut self, pid: u32, started: &str) -> std::io::Result<()> {
        let text = format!("{pid}\n{started}\n");
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())?;
        self.file.set_len(text.len() as u64)?;
        self.file.sync_data()
    }

    /// Removes the file, then releases the lock (in that order, so a waiter
    /// never keeps a lock on a removed file: see `acquire`).
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// A running daemon, proven to hold the lock file.
#[derive(Debug)]
pub struct Owner {
    pub pid: u32,
    pub started: String,
    pub pidfd: rustix::fd::OwnedFd,
}

/// Finds the daemon holding the lock at `path`, proving it: the lock is
/// held, and the pid (opened as a pidfd first, so it cannot be recycled
/// under us) holds the flock itself. `None` if no daemon holds it.
pub fn find_owner(path: &Path) -> std::io::Result<Option<Owner>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if flock(&file, FlockOperation::NonBlockingLockShared).is_ok() {
        // Nobody holds it exclusively: no daemon.
        return Ok(None);
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut lines = text.lines();
    let Some(pid) = lines.next().and_then(|l| l.trim().parse::<u32>().ok()) else { return Ok(None) };
    let started = lines.next().unwrap_or_default().to_owned();
    let Some(raw) = rustix::process::Pid::from_raw(pid as i32) else { return Ok(None) };
    let pidfd = match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => return Ok(None),
    };
    let md = file.metadata()?;
    Ok((holds_flock(pid, &md) && is_daemon_process(pid)).then_some(Owner { pid, started, pidfd }))
}

/// Whether `pid` runs `ctb ... daemon run` (its command line, read after
/// its pidfd was opened, so the pid names the process that holds the lock):
/// another process holding the lock file is never taken for the daemon,
/// and so never signalled.
fn is_daemon_process(pid: u32) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    args.windows(2).any(|w| w == [&b"daemon"[..], &b"run"[..]])
}

/// Whether `pid` holds an exclusive `flock` on the file `md` describes.
///
/// Read from the process's own fd table: for each of its descriptors on
/// that file, `/proc/PID/fdinfo/FD` lists the locks held through it
/// (`lock:\t1: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE 0 EOF`, Linux
/// 4.13+). The pid there is the process that took the lock: another process
/// that merely has the file open (or a recycled pid) does not pass.
/// System-wide `/proc/locks` is only the fallback for older kernels: it is
/// read in page-sized chunks, each a new walk of a list that other
/// processes' locks change meanwhile, so under lock churn an entry can be
/// skipped (seen in CI: ten demos at once, one `daemon wait` took a running
/// daemon for gone).
fn holds_flock(pid: u32, md: &std::fs::Metadata) -> bool {
    match holds_flock_fdinfo(pid, md) {
        Some(found) => found,
        None => holds_flock_proc_locks(pid, md),
    }
}

/// `Some(answer)` from `/proc/PID/fdinfo`, `None` if this kernel does not
/// list locks there (no `lock:` line on the file's descriptors).
fn holds_flock_fdinfo(pid: u32, md: &std::fs::Metadata) -> Option<bool> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Some(false) };
    let mut saw_lock_line = false;
    for entry in dir.flatten() {
        let Ok(target) = std::fs::metadata(entry.path()) else { continue };
        if target.dev() != md.dev() || target.ino() != md.ino() {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy()))
        else {
            continue;
        };
        for line in info.lines().filter_map(|l| l.strip_prefix("lock:")) {
            saw_lock_line = true;
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 5 && f[1] == "FLOCK" && f[3] == "WRITE" && f[4] == pid.to_string() {
                return Some(true);
            }
        }
    }
    saw_lock_line.then_some(false)
}

/// The same from `/proc/locks` (`N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ...`).
fn holds_flock_proc_locks(pid: u32, md: &std::fs::Metadata) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else { return false };
    let dev = md.dev();
    // Linux's dev_t: major in bits 8-19 and 32-43, minor in 0-7 and 20-31.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let want = format!("{major:02x}:{minor:02x}:{}", md.ino());
    text.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Blocked waiters are listed as "N: -> FLOCK ...": skip them.
        f.len() >= 6 && f[1] == "FLOCK" && f[3] == "WRITE" && f[4] == pid.to_string() && f[5] == want
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The proof must hold while other processes' locks come and go: 400
    /// other held locks (so the system-wide listing spans several pages)
    /// and threads taking and dropping locks all the time.
    fn proof_under_churn(check: fn(u32, &std::fs::Metadata) -> bool) -> usize {
        let dir = std::env::temp_dir().join(format!("ctb-lock-churn-{}-{:?}", std::process::id(), check as usize));
        std::fs::create_dir_all(&dir).unwrap();
        let ours = File::create(dir.join("ours")).unwrap();
        flock(&ours, FlockOperation::LockExclusive).unwrap();
        let md = ours.metadata().unwrap();
        let held: Vec<File> = (0..400)
            .map(|i| {
                let f = File::create(dir.join(format!("held{i}"))).unwrap();
                flock(&f, FlockOperation::LockExclusive).unwrap();
                f
            })
            .collect();
        let stop = AtomicBool::new(false);
        let misses = std::thread::scope(|s| {
            for t in 0..2 {
                let (dir, stop) = (&dir, &stop);
                s.spawn(move || {
                    let files: Vec<File> =
                        (0..50).map(|i| File::create(dir.join(format!("churn{t}-{i}"))).unwrap()).collect();
                    while !stop.load(Ordering::Relaxed) {
                        for f in &files {
                            flock(f, FlockOperation::LockExclusive).unwrap();
                        }
                        for f in &files {
                            flock(f, FlockOperation::Unlock).unwrap();
                        }
                    }
                });
            }
            let misses = (0..2000).filter(|_| !check(std::process::id(), &md)).count();
            stop.store(true, Ordering::Relaxed);
            misses
        });
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
        misses
    }

    #[test]
    fn the_owner_proof_never_misses_under_lock_churn() {
        assert_eq!(proof_under_churn(holds_flock), 0);
    }

    /// The reason for the fdinfo proof (ignored: it demonstrates a kernel
    /// behaviour, it does not test ctb). Run with --ignored to see misses.
    #[test]
    #[ignore]
    fn proc_locks_misses_entries_under_lock_churn() {
        assert!(proof_under_churn(holds_flock_proc_locks) > 0);
    }
}
