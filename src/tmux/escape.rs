//! Escaping user strings for tmux: its command parser (argv elements
//! ending in `;`) and its format expander (`#{...}`, `#(...)` which runs a
//! shell command, `#[...]`, `#H`...).
//!
//! Which arguments tmux format-expands, the same on 3.3a, 3.4, 3.5a and
//! 3.7c (read in the sources of 3.4, 3.5a and 3.7c, tested on 3.3a, 3.4 and
//! 3.7c with a hostile corpus; tests/hardening.rs keeps testing it):
//!
//! | argument | expanded |
//! |---|---|
//! | `new-session -s NAME`, `-n WINDOW`, `-c DIR` | yes |
//! | `rename-session`, `rename-window`, `new-window -n`, `-c` | yes |
//! | `split-window -c`, `respawn-pane -c`, `select-pane -T` | yes |
//! | the option *name* of `set-option` (never a user string in ctb) | yes |
//! | `display-message`, `pipe-pane` | yes, and strftime (`%`) too |
//! | the command after `--` (`new-session`, `split-window`, ...) | no |
//! | `set-option NAME VALUE` (without `-F`), `-e VAR=VALUE` | no |
//! | `send-keys` (`-l`, key names, `-H`), any `-t TARGET` | no |
//!
//! Exceptions ctb avoids: 3.7c's `new-window -S -n` expands the name twice
//! (never use `-S` with a user name); targets are not expanded but match by
//! prefix and glob (`-t foob` is `foobar`), so ctb targets by id.
//!
//! In an expanded argument `##` is one `#`, except that tmux copies a run
//! of `#` followed by `[` unchanged (a style, `#[fg=red]`, kept for later).
//! [`literal`] therefore doubles every run of `#` not followed by `[`:
//! nothing runs, and tmux receives the user's text. What tmux then *stores*
//! may still differ by version (3.3a and 3.4 rewrite `.`/`:` to `_` in
//! session names and escape `\`, `$x`, control and non-UTF-8 bytes; 3.7c
//! rejects control and non-UTF-8 bytes), so ctb reports the name tmux
//! printed back, never the one it was given.

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

/// A user string for an argument tmux format-expands: every run of `#`
/// doubled unless a `[` follows it (see the module doc), so `#(cmd)` is
/// the text `#(cmd)` and never runs; then made safe for the command parser
/// ([`tmux_arg`]).
pub fn literal(a: &OsStr) -> OsString {
    let b = a.as_bytes();
    let mut v = Vec::with_capacity(b.len() + 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'#' {
            v.push(b[i]);
            i += 1;
            continue;
        }
        let run = b[i..].iter().take_while(|&&c| c == b'#').count();
        let doubled = if b.get(i + run) == Some(&b'[') { run } else { 2 * run };
        v.resize(v.len() + doubled, b'#');
        i += run;
    }
    tmux_arg(&OsString::from_vec(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_hashes_and_guards_a_trailing_semicolon() {
        let l = |s: &str| literal(OsStr::new(s)).into_string().unwrap();
        assert_eq!(l("job#(touch x)"), "job##(touch x)");
        assert_eq!(l("#{session_id}"), "##{session_id}");
        assert_eq!(l("##"), "####");
        assert_eq!(l("end#"), "end##");
        assert_eq!(l("a;"), "a\\;");
        assert_eq!(l("plain"), "plain");
        // tmux copies a run of `#` before `[` unchanged.
        assert_eq!(l("#[fg=red]"), "#[fg=red]");
        assert_eq!(l("a##[b"), "a##[b");
        assert_eq!(l("x#y#[z"), "x##y#[z");
    }
}
