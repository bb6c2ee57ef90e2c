//! Small helpers with no I/O and no knowledge of tmux: time stamps,
//! bytes shown as text, hex encoding. Any layer may call them; they call nothing of ctb.

mod hex;
mod time;

pub use hex::{hex_decode, hex_encode};
pub use time::{now_rfc3339, rfc3339};

/// Bytes as text for display: invalid UTF-8 becomes U+FFFD.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
