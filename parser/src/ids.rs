//! Typed tmux object ids: sessions `$N`, windows `@N`, panes `%N`.
//!
//! Ids are never reused during a server's life, so they are the only safe way
//! to refer to a tmux object (names can be renamed and `-t` prefix-matches).

use std::fmt;
use std::str::FromStr;

/// An id string that is not `<sigil><decimal u32>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tmux {kind} id (expected {sigil}N): {text:?}")]
pub struct IdError {
    kind: &'static str,
    sigil: char,
    text: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $sigil:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The sigil tmux writes before the number.
            #[allow(clippy::char_lit_as_u8)]
            pub const SIGIL: u8 = $sigil as u8;

            /// Parses `<sigil>N` from bytes.
            pub fn from_bytes(b: &[u8]) -> Option<Self> {
                match b.split_first() {
                    Some((&s, digits)) if s == Self::SIGIL => crate::num::parse_u32(digits).map($name),
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $sigil, self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::from_bytes(s.as_bytes()).ok_or_else(|| IdError {
                    kind: $kind,
                    sigil: $sigil,
                    text: s.to_owned(),
                })
            }
        }
    };
}

id_type!(
    /// A session id, `$N`.
    SessionId, '$', "session"
);
id_type!(
    /// A window id, `@N`.
    WindowId, '@', "window"
);
id_type!(
    /// A pane id, `%N`.
    PaneId, '%', "pane"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!("$3".parse::<SessionId>().unwrap(), SessionId(3));
        assert_eq!(WindowId(7).to_string(), "@7");
        assert_eq!(PaneId::from_bytes(b"%12"), Some(PaneId(12)));
        assert!("%x".parse::<PaneId>().is_err());
        assert!("$".parse::<SessionId>().is_err());
        assert!("@1".parse::<SessionId>().is_err());
        assert!("$99999999999".parse::<SessionId>().is_err());
        assert!("$+1".parse::<SessionId>().is_err());
    }
}
