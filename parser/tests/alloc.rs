//! Allocation counts of the hot path: notifications other than output
//! allocate nothing beyond their names. Its own test binary, since it
//! installs a counting global allocator (counting per thread, so the test
//! harness's other threads do not disturb it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tmux_control::{Item, Parser};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `next_item` for one line fed beforehand (the buffer
/// growth of `feed` is not counted), with the item it returned.
fn allocs_for(line: &[u8]) -> (usize, Option<Item>) {
    let mut p = Parser::new();
    p.feed(line);
    let before = ALLOCS.with(Cell::get);
    let item = p.next_item();
    let after = ALLOCS.with(Cell::get);
    (after - before, item)
}

#[test]
fn notifications_allocate_only_their_names() {
    let cases: &[(&[u8], usize)] = &[
        (b"%sessions-changed\n", 0),
        (b"%window-add @1\n", 0),
        (b"%unlinked-window-close @3\n", 0),
        (b"%window-pane-changed @1 %2\n", 0),
        (b"%session-window-changed $1 @2\n", 0),
        (b"%pause %1\n", 0),
        (b"%exit\n", 0),
        (b"%output %1\n", 0),
        (b"%session-renamed $1 name\n", 1),
        (b"%session-changed $1 a name with spaces\n", 1),
        (b"%output %1 hello\\015\\012\n", 1),
        (b"%client-session-changed client-1 $2 name\n", 2),
    ];
    for &(line, want) in cases {
        let (got, item) = allocs_for(line);
        assert!(matches!(item, Some(Item::Notification(_))), "{item:?}");
        assert_eq!(got, want, "allocations for {:?}", String::from_utf8_lossy(line));
    }
}

#[test]
fn block_lines_allocate_once_each() {
    let mut p = Parser::new();
    p.feed(b"%begin 1 2 1\n%end 1 2 1\n%begin 1 3 1\none\ntwo\n%end 1 3 1\n");
    let before = ALLOCS.with(Cell::get);
    assert!(matches!(p.next_item(), Some(Item::Block(b)) if b.lines.is_empty()));
    assert_eq!(ALLOCS.with(Cell::get) - before, 0, "empty block");
    let before = ALLOCS.with(Cell::get);
    assert!(matches!(p.next_item(), Some(Item::Block(b)) if b.lines.len() == 2));
    // Two lines, plus the lines vector (grown once to fit 4).
    assert_eq!(ALLOCS.with(Cell::get) - before, 3, "two-line block");
}
