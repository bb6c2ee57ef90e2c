//! Parsing one complete control-mode line (no `\n`, no trailing `\r`).
//!
//! The grammar of each notification is a small `nom` parser. A line whose
//! keyword is known but whose arguments do not fit is not a notification:
//! the stream parser turns it into [`Item::Unknown`](crate::Item::Unknown).
//! Notifications whose arguments are all ids tolerate extra trailing fields
//! (ignored), so a future tmux adding a field does not hide them.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_while1};
use nom::combinator::{all_consuming, map, map_opt, opt, rest, value};
use nom::sequence::preceded;
use nom::IResult;

use crate::escape::decode_output;
use crate::ids::{PaneId, SessionId, WindowId};
use crate::item::Notification;
use crate::num::{parse_u32, parse_u64};

type Res<'a, T> = IResult<&'a [u8], T>;

fn token(i: &[u8]) -> Res<'_, &[u8]> {
    take_while1(|b| b != b' ')(i)
}

fn sp(i: &[u8]) -> Res<'_, &[u8]> {
    tag(b" ")(i)
}

fn u64_field(i: &[u8]) -> Res<'_, u64> {
    map_opt(token, parse_u64)(i)
}

fn u32_field(i: &[u8]) -> Res<'_, u32> {
    map_opt(token, parse_u32)(i)
}

fn session(i: &[u8]) -> Res<'_, SessionId> {
    map_opt(token, SessionId::from_bytes)(i)
}

fn window(i: &[u8]) -> Res<'_, WindowId> {
    map_opt(token, WindowId::from_bytes)(i)
}

fn pane(i: &[u8]) -> Res<'_, PaneId> {
    map_opt(token, PaneId::from_bytes)(i)
}

/// An optional id field: `-` means absent.
fn opt_field<'a, T: Clone>(mut f: impl FnMut(&'a [u8]) -> Res<'a, T>) -> impl FnMut(&'a [u8]) -> Res<'a, Option<T>> {
    move |i| alt((value(None, tag(b"-")), map(&mut f, Some)))(i)
}

/// Everything up to the end of the line (a name may hold spaces).
fn to_end(i: &[u8]) -> Res<'_, Vec<u8>> {
    map(rest, <[u8]>::to_vec)(i)
}

/// Extra fields after the ones we know, ignored.
fn trailing(i: &[u8]) -> Res<'_, ()> {
    value((), opt(preceded(sp, rest)))(i)
}

/// Skips fields up to a lone `:` and returns what follows it.
fn after_lone_colon(mut i: &[u8]) -> Option<&[u8]> {
    loop {
        match i {
            [b':'] => return Some(&[]),
            [b':', b' ', data @ ..] => return Some(data),
            _ => {
                let (r, _) = take_till::<_, _, nom::error::Error<&[u8]>>(|b| b == b' ')(i).ok()?;
                i = r.strip_prefix(b" ")?;
            }
        }
    }
}

/// Parses one line as a notification. `None` when it is not a (well-formed)
/// notification tmux is known to send.
pub fn parse_notification(line: &[u8]) -> Option<Notification> {
    let body = line.strip_prefix(b"%")?;
    let (keyword, args) = match memchr::memchr(b' ', body) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    use Notification as N;
    // Notifications without arguments, or with an optional free text.
    match (keyword, args) {
        (b"sessions-changed", _) => return Some(N::SessionsChanged),
        (b"exit", None) => return Some(N::Exit { reason: None }),
        (b"exit", Some(r)) => return Some(N::Exit { reason: (!r.is_empty()).then(|| r.to_vec()) }),
        (_, None) => return None,
        _ => {}
    }
    let args = args?;
    let parsed: Res<'_, Notification> = match keyword {
        b"output" => {
            return pane(args).ok().and_then(|(r, pane)| {
                let data = match r {
                    [] => Vec::new(),
                    [b' ', d @ ..] => decode_output(d),
                    _ => return None,
                };
                Some(N::Output { pane, data })
            })
        }
        b"extended-output" => {
            let (r, (pane, age_ms)) = nom::sequence::pair(pane, preceded(sp, u64_field))(args).ok()?;
            let data = match r {
                [] => &[][..],
                [b' ', r @ ..] => after_lone_colon(r)?,
                _ => return None,
            };
            return Some(N::ExtendedOutput { pane, age_ms, data: decode_output(data) });
        }
        b"pause" => all_consuming(map(nom::sequence::terminated(pane, trailing), |pane| N::Pause { pane }))(args),
        b"continue" => all_consuming(map(nom::sequence::terminated(pane, trailing), |pane| N::Continue { pane }))(args),
        b"session-changed" => map(nom::sequence::separated_pair(session, sp, to_end), |(session, name)| {
            N::SessionChanged { session, name }
        })(args),
        b"session-renamed" => map(nom::sequence::separated_pair(session, sp, to_end), |(session, name)| {
            N::SessionRenamed { session, name }
        })(args),
        b"client-session-changed" => {
            map(nom::sequence::tuple((token, sp, session, sp, to_end)), |(client, _, session, _, name)| {
                N::ClientSessionChanged { client: client.to_vec(), session, name }
            })(args)
        }
        b"client-detached" => map(to_end, |client| N::ClientDetached { client })(args),
        b"session-window-changed" => {
            all_consuming(map(nom::sequence::tuple((session, sp, window, trailing)), |(session, _, window, _)| {
                N::SessionWindowChanged { session, window }
            }))(args)
        }
        b"window-add" => id_only(args, window, |window| N::WindowAdd { window }),
        b"window-close" => id_only(args, window, |window| N::WindowClose { window }),
        b"unlinked-window-add" => id_only(args, window, |window| N::UnlinkedWindowAdd { window }),
        b"unlinked-window-close" => id_only(args, window, |window| N::UnlinkedWindowClose { window }),
        b"pane-mode-changed" => id_only(args, pane, |pane| N::PaneModeChanged { pane }),
        b"window-renamed" => {
            map(nom::sequence::separated_pair(window, sp, to_end), |(window, name)| N::WindowRenamed { window, name })(
                args,
            )
        }
        b"unlinked-window-renamed" => map(nom::sequence::separated_pair(window, sp, to_end), |(window, name)| {
            N::UnlinkedWindowRenamed { window, name }
        })(args),
        b"window-pane-changed" => {
            all_consuming(map(nom::sequence::tuple((window, sp, pane, trailing)), |(window, _, pane, _)| {
                N::WindowPaneChanged { window, pane }
            }))(args)
        }
        b"layout-change" => all_consuming(map(
            nom::sequence::tuple((window, preceded(sp, token), opt(preceded(sp, token)), opt(preceded(sp, rest)))),
            |(window, layout, visible, flags): (_, &[u8], Option<&[u8]>, Option<&[u8]>)| N::LayoutChange {
                window,
                layout: layout.to_vec(),
                visible_layout: visible.map(<[u8]>::to_vec),
                flags: flags.map(<[u8]>::to_vec),
            },
        ))(args),
        b"subscription-changed" => {
            let (r, (name, _, session, _, window, _, window_index, _, pane)) = nom::sequence::tuple((
                token,
                sp,
                opt_field(session),
                sp,
                opt_field(window),
                sp,
                opt_field(u32_field),
                sp,
                opt_field(pane),
            ))(args)
            .ok()?;
            let value = match r {
                [] => &[][..],
                [b' ', r @ ..] => after_lone_colon(r)?,
                _ => return None,
            };
            return Some(N::SubscriptionChanged {
                name: name.to_vec(),
                session,
                window,
                window_index,
                pane,
                value: value.to_vec(),
            });
        }
        b"paste-buffer-changed" => map(to_end, |name| N::PasteBufferChanged { name })(args),
        b"paste-buffer-deleted" => map(to_end, |name| N::PasteBufferDeleted { name })(args),
        b"config-error" => map(to_end, |text| N::ConfigError { text })(args),
        b"message" => map(to_end, |text| N::Message { text })(args),
        _ => return None,
    };
    parsed.ok().map(|(_, n)| n)
}

fn id_only<'a, T>(
    args: &'a [u8],
    id: impl FnMut(&'a [u8]) -> Res<'a, T>,
    make: impl FnMut(T) -> Notification,
) -> Res<'a, Notification> {
    all_consuming(map(nom::sequence::terminated(id, trailing), make))(args)
}

/// Parses the `T N F` of a `%begin`/`%end`/`%error` line.
pub(crate) fn parse_guard(args: &[u8]) -> Option<(u64, u64, u32)> {
    let r: Res<'_, (u64, u64, u32)> = all_consuming(map(
        nom::sequence::tuple((u64_field, sp, u64_field, sp, u32_field, trailing)),
        |(t, _, n, _, f, _)| (t, n, f),
    ))(args);
    r.ok().map(|(_, v)| v)
}
