//! tmux key names, checked before anything is sent: tmux's `send-keys`
//! types an unknown key name as text (`Entr` arrives as the letters), so
//! ctb refuses it instead.
//!
//! The grammar accepted (tmux's `key_string_lookup_string`, key-string.c,
//! the same in 3.3a to 3.7c, less the mouse keys and `0xNN` codes):
//!
//! - modifiers, any number, each `C-` (control), `M-` (meta) or `S-`
//!   (shift), letter in either case; or a leading `^` for control;
//! - then a key: a named key (case-insensitive: `Enter`, `Escape`, `Tab`,
//!   `BTab`, `Space`, `BSpace`, `Up`, `Down`, `Left`, `Right`, `Home`,
//!   `End`, `IC`/`Insert`, `DC`/`Delete`, `NPage`/`PageDown`/`PgDn`,
//!   `PPage`/`PageUp`/`PgUp`, `F1`..`F12`, `KP0`..`KP9`, `KP/`, `KP*`,
//!   `KP-`, `KP+`, `KP.`, `KPEnter`), or one printable ASCII character,
//!   or one UTF-8 character;
//! - with control, an ASCII key must be one tmux can express: a letter,
//!   one of `@[\]^_`, space, `?`, or one of ``!#()+,-.0123456789:;<=>'`/``
//!   (sent as a modified key), `Tab`, `Enter`, `Escape`.

/// Named keys (compared case-insensitively), from key-string.c.
const NAMED: &[&str] = &[
    "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12", "IC", "Insert", "DC", "Delete", "Home",
    "End", "NPage", "PageDown", "PgDn", "PPage", "PageUp", "PgUp", "Tab", "BTab", "Space", "BSpace", "Enter", "Escape",
    "Up", "Down", "Left", "Right", "KP/", "KP*", "KP-", "KP7", "KP8", "KP9", "KP+", "KP4", "KP5", "KP6", "KP1", "KP2",
    "KP3", "KPEnter", "KP0", "KP.",
];

/// Whether tmux knows `key` as a key name (see the module doc).
pub fn valid_key(key: &str) -> bool {
    let mut s = key;
    let mut ctrl = false;
    if s.len() > 1 && s.starts_with('^') {
        ctrl = true;
        s = &s[1..];
    }
    loop {
        let b = s.as_bytes();
        if b.len() >= 2 && b[1] == b'-' {
            match b[0] {
                b'C' | b'c' => ctrl = true,
                b'M' | b'm' | b'S' | b's' => {}
                _ => return false,
            }
            s = &s[2..];
        } else {
            break;
        }
    }
    let mut chars = s.chars();
    let (Some(c), rest) = (chars.next(), chars.as_str()) else { return false };
    if rest.is_empty() && !c.is_ascii() {
        return true; // one UTF-8 character
    }
    let code = if rest.is_empty() {
        if (c as u32) < 32 {
            return false;
        }
        c as u32
    } else {
        match NAMED.iter().find(|n| n.eq_ignore_ascii_case(s)) {
            Some(n) if n.eq_ignore_ascii_case("Tab") => 9,
            Some(n) if n.eq_ignore_ascii_case("Space") => 32,
            Some(n) if n.eq_ignore_ascii_case("Enter") => 13,
            Some(n) if n.eq_ignore_ascii_case("Escape") => 27,
            Some(_) => return true, // not ASCII: any modifier works
            None => return false,
        }
    };
    if !ctrl || code > 127 {
        return true;
    }
    let other = "!#()+,-.0123456789:;<=>'\r\t\x7f`/";
    let ch = char::from_u32(code).unwrap_or('\0');
    other.contains(ch) || matches!(code, 9 | 13 | 27 | 32 | 63 | 64..=95 | 97..=122)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_tmux_key_names() {
        for k in [
            "Enter", "enter", "C-c", "c-C", "^C", "M-x", "C-M-x", "S-Up", "F12", "KP.", "Escape", "a", ";", "-", "é",
            "C-Space", "C-?", "C-@", "BSpace", "PgUp", "M-Enter", "C-;", "\\", "~", "#",
        ] {
            assert!(valid_key(k), "{k}");
        }
        for k in ["", "Entr", "F13", "C-", "X-a", "ab", "C-é-", "None", "Any", "0x41", "MouseDown1", "C-~", "\t"] {
            assert!(!valid_key(k), "{k:?}");
        }
    }
}
