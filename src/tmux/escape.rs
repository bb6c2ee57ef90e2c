//! Escaping user strings for tmux's command parser (and, with the format
//! findings, its format expander).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// tmux splits its argv at an argument ending in `;`; a `\;` ending keeps
/// a literal `;`. Escape user data so it never becomes a separator.
pub fn tmux_arg(a: &OsStr) -> OsString {
    let b = a.as_bytes();
    if b.ends_with(b";") {
        let mut v = b[..b.len() - 1].to_vec();
        v.extend_from_slice(b"\\;");
        OsString::from_vec(v)
    } else {
        a.to_owned()
    }
}
