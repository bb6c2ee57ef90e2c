//! The pane relay's wire format (relay → subscriber), pure: a 1-byte kind,
//! a 4-byte little-endian length, the payload. A subscriber sends only
//! sync requests (one byte each), and unsubscribes by closing the
//! connection.

/// The relay is ready: from here on every byte of the pane reaches this
/// subscriber (payload: the relay's pid, u32 LE).
pub const HELLO: u8 = 0;
/// Bytes the pane's program wrote, in order.
pub const DATA: u8 = 1;
/// This subscriber read too slowly: this many bytes (u64 LE) were dropped
/// here, between the previous DATA frame and the next.
pub const DROPPED: u8 = 2;
/// tmux closed the pipe: the pane is gone, its server exited, or its pipe
/// was replaced. Nothing follows.
pub const END: u8 = 3;
/// The answer to a subscriber's sync request (the byte [`SYNC_REQUEST`]):
/// every byte tmux had written to the pipe when the relay got the
/// request came before it.
pub const SYNC: u8 = 4;

/// What a subscriber sends to ask for a [`SYNC`] frame.
pub const SYNC_REQUEST: u8 = b'S';

/// The largest payload a frame carries.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The 5-byte header of a frame.
pub fn header(kind: u8, len: usize) -> [u8; 5] {
    let l = (len as u32).to_le_bytes();
    [kind, l[0], l[1], l[2], l[3]]
}

/// A whole frame.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.extend_from_slice(&header(kind, payload.len()));
    v.extend_from_slice(payload);
    v
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello { pid: u32 },
    Data(Vec<u8>),
    Dropped(u64),
    End,
    Sync,
}

/// Parses a header: the kind and payload length, or why not.
pub fn parse_header(h: [u8; 5]) -> Result<(u8, usize), String> {
    let len = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(format!("relay frame of {len} bytes (at most {MAX_PAYLOAD})"));
    }
    if h[0] > SYNC {
        return Err(format!("unknown relay frame kind {}", h[0]));
    }
    Ok((h[0], len))
}

/// A frame from its kind and payload.
pub fn decode(kind: u8, payload: Vec<u8>) -> Result<Frame, String> {
    let fixed = |n: usize| -> Result<(), String> {
        if payload.len() == n {
            Ok(())
        } else {
            Err(format!("relay frame kind {kind} with {} bytes", payload.len()))
        }
    };
    Ok(match kind {
        HELLO => {
            fixed(4)?;
            Frame::Hello { pid: u32::from_le_bytes(payload[..4].try_into().unwrap_or_default()) }
        }
        DATA => Frame::Data(payload),
        DROPPED => {
            fixed(8)?;
            Frame::Dropped(u64::from_le_bytes(payload[..8].try_into().unwrap_or_default()))
        }
        END => Frame::End,
        _ => Frame::Sync,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (kind, payload, want) in [
            (HELLO, 7u32.to_le_bytes().to_vec(), Frame::Hello { pid: 7 }),
            (DATA, b"a\r\nb".to_vec(), Frame::Data(b"a\r\nb".to_vec())),
            (DROPPED, 9u64.to_le_bytes().to_vec(), Frame::Dropped(9)),
            (END, vec![], Frame::End),
            (SYNC, vec![], Frame::Sync),
        ] {
            let f = encode(kind, &payload);
            let (k, len) = parse_header(f[..5].try_into().unwrap()).unwrap();
            assert_eq!(decode(k, f[5..5 + len].to_vec()).unwrap(), want);
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        assert!(parse_header([9, 0, 0, 0, 0]).is_err());
        assert!(parse_header([SYNC + 1, 0, 0, 0, 0]).is_err());
        assert!(parse_header(header(DATA, MAX_PAYLOAD + 1)).is_err());
        assert!(decode(HELLO, vec![1]).is_err());
        assert!(decode(DROPPED, vec![]).is_err());
    }
}
