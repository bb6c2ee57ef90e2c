//! Runtime directory hygiene: logs of servers that are gone are removed by
//! the next daemon that starts (a log is all a daemon leaves behind).

use std::path::Path;

use crate::runtime::{find_owner, ServerFiles};

/// Removes the `.log` of every other server whose socket no longer exists
/// and whose daemon lock nobody holds. The socket is read from the log's
/// own `daemon starting ... socket=PATH` line.
pub fn remove_stale_logs(dir: &Path, ours: &ServerFiles) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let path = entry.path();
        if path == ours.log || path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let Some(socket) = logged_socket(&path) else { continue };
        if socket.exists() || find_owner(&path.with_extension("lock")).ok().flatten().is_some() {
            continue;
        }
        tracing::debug!(log = %path.display(), socket = %socket.display(), "removing the log of a server that is gone");
        let _ = std::fs::remove_file(&path);
    }
}

/// The socket path of the last `daemon starting` line of a log.
fn logged_socket(log: &Path) -> Option<std::path::PathBuf> {
    use std::io::Read;
    let mut f = std::fs::File::open(log).ok()?;
    let mut buf = Vec::new();
    // Logs are capped (1 MiB); the first start line is near the top.
    f.by_ref().take(64 * 1024).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().rev().find(|l| l.contains("daemon starting"))?;
    let socket = line.split(" socket=").nth(1)?.trim();
    (!socket.is_empty()).then(|| std::path::PathBuf::from(socket))
}
