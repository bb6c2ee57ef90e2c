//! JSON form of parsed control-mode items (what `ctb replay` prints).

use serde_json::{Map, Value};
use tmux_control::{Block, Item, Notification, Overflow};

use crate::util::lossy;

/// One item as a JSON object.
pub fn item_to_json(item: &Item) -> Value {
    let mut m = Map::new();
    match item {
        Item::Notification(n) => {
            m.insert("kind".into(), "notification".into());
            m.insert("type".into(), n.type_name().into());
            notification_fields(n, &mut m);
        }
        Item::Block(b) => {
            m.insert("kind".into(), "block".into());
            block_fields(b, &mut m, true);
        }
        Item::Incomplete(b) => {
            m.insert("kind".into(), "incomplete".into());
            block_fields(b, &mut m, false);
        }
        Item::Unknown(line) => {
            m.insert("kind".into(), "unknown".into());
            m.insert("line".into(), lossy(line).into());
        }
        Item::Overflow(o) => {
            m.insert("kind".into(), "overflow".into());
            match *o {
                Overflow::Line { bytes } => {
                    m.insert("what".into(), "line".into());
                    m.insert("bytes".into(), bytes.into());
                }
                Overflow::Block { time, number, flags, ok, closed, bytes } => {
                    m.insert("what".into(), "block".into());
                    m.insert("time".into(), time.into());
                    m.insert("number".into(), number.into());
                    m.insert("flags".into(), flags.into());
                    m.insert("ok".into(), ok.into());
                    m.insert("closed".into(), closed.into());
                    m.insert("bytes".into(), bytes.into());
                }
                _ => {
                    m.insert("what".into(), "other".into());
                }
            }
        }
    }
    Value::Object(m)
}

fn block_fields(b: &Block, m: &mut Map<String, Value>, with_ok: bool) {
    m.insert("time".into(), b.time.into());
    m.insert("number".into(), b.number.into());
    m.insert("flags".into(), b.flags.into());
    if with_ok {
        m.insert("ok".into(), b.ok.into());
    }
    m.insert("lines".into(), b.lines.iter().map(|l| Value::from(lossy(l))).collect());
}

fn notification_fields(n: &Notification, m: &mut Map<String, Value>) {
    use Notification as N;
    let mut put = |k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    let text = |b: &[u8]| Value::from(lossy(b));
    match n {
        N::Output { pane, data } => {
            put("pane_id", pane.to_string().into());
            put("data", text(data));
            put("data_base64", base64(data).into());
        }
        N::ExtendedOutput { pane, age_ms, data } => {
            put("pane_id", pane.to_string().into());
            put("age_ms", (*age_ms).into());
            put("data", text(data));
            put("data_base64", base64(data).into());
        }
        N::Pause { pane } | N::Continue { pane } | N::PaneModeChanged { pane } => {
            put("pane_id", pane.to_string().into());
        }
        N::Exit { reason } => {
            if let Some(r) = reason {
                put("reason", text(r));
            }
        }
        N::SessionsChanged => {}
        N::SessionChanged { session, name } | N::SessionRenamed { session, name } => {
            put("session_id", session.to_string().into());
            put("name", text(name));
        }
        N::ClientSessionChanged { client, session, name } => {
            put("client", text(client));
            put("session_id", session.to_string().into());
            put("name", text(name));
        }
        N::ClientDetached { client } => put("client", text(client)),
        N::SessionWindowChanged { session, window } => {
            put("session_id", session.to_string().into());
            put("window_id", window.to_string().into());
        }
        N::WindowAdd { window }
        | N::WindowClose { window }
        | N::UnlinkedWindowAdd { window }
        | N::UnlinkedWindowClose { window } => put("window_id", window.to_string().into()),
        N::WindowRenamed { window, name } | N::UnlinkedWindowRenamed { window, name } => {
            put("window_id", window.to_string().into());
            put("name", text(name));
        }
        N::WindowPaneChanged { window, pane } => {
            put("window_id", window.to_string().into());
            put("pane_id", pane.to_string().into());
        }
        N::LayoutChange { window, layout, visible_layout, flags } => {
            put("window_id", window.to_string().into());
            put("layout", text(layout));
            if let Some(v) = visible_layout {
                put("visible_layout", text(v));
            }
            if let Some(f) = flags {
                put("flags", text(f));
            }
        }
        N::SubscriptionChanged { name, session, window, window_index, pane, value } => {
            put("subscription", text(name));
            let opt = |s: Option<String>| s.map_or(Value::Null, Value::from);
            put("session_id", opt(session.map(|s| s.to_string())));
            put("window_id", opt(window.map(|w| w.to_string())));
            put("window_index", window_index.map_or(Value::Null, Value::from));
            put("pane_id", opt(pane.map(|p| p.to_string())));
            put("value", text(value));
        }
        N::PasteBufferChanged { name } | N::PasteBufferDeleted { name } => put("name", text(name)),
        N::ConfigError { text: t } | N::Message { text: t } => put("value", text(t)),
    }
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
