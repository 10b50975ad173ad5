//! Pipelined appends cost no allocation each: the line is parsed where it
//! lies in the read buffer, the payload framed from there, the reply
//! written straight into the batch's output. Allocations are counted, not
//! timed, so this fails only when a per-request allocation comes back (it
//! failed at 15 per append when requests went through `serde_json::Value`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use wal_node::frame::DEFAULT_MAX_ENTRY_BYTES;
use wal_node::log::{Options, Recover};
use wal_node::node::{Config, Node};

/// Counts the allocations of the thread that asks, so tests running
/// beside this one in the harness do not count.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// `init`, then `appends` wal_append lines of 100 B payloads.
fn requests(appends: u64) -> Vec<u8> {
    let payload: String = (0..100).map(|i| char::from(b'a' + i % 26)).collect();
    let mut input = br#"{"src":"c1","dest":"n1","body":{"type":"init","msg_id":0,"node_id":"n1","node_ids":["n1"]}}"#.to_vec();
    input.push(b'\n');
    for id in 1..=appends {
        input.extend_from_slice(
            format!(
                r#"{{"src":"c1","dest":"n1","body":{{"type":"wal_append","msg_id":{id},"payload":"{payload}"}}}}"#
            )
            .as_bytes(),
        );
        input.push(b'\n');
    }
    input
}

/// Allocations made while a node (private log) serves `input`; checks
/// that every request got its reply.
fn serve(input: Vec<u8>, replies: usize) -> u64 {
    let config = Config {
        dir: None,
        log: Options {
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            recover: Recover::Refuse,
            max_segment_bytes: None,
        },
        max_batch: 4096,
    };
    let mut out = Vec::with_capacity(replies * 200);
    let before = allocations();
    Node::new(config)
        .run(Cursor::new(input), &mut out)
        .expect("the node serves");
    let made = allocations() - before;
    let text = String::from_utf8(out).expect("replies are UTF-8");
    assert_eq!(text.lines().count(), replies);
    assert_eq!(
        text.matches("\"type\":\"wal_append_ok\"").count(),
        replies - 1,
        "every append acknowledged"
    );
    made
}

#[test]
fn pipelined_appends_allocate_nothing_each() {
    // Batches, the index and the log's buffers allocate per batch or per
    // block of entries; compare two runs so only per-append costs remain.
    let (small, large) = (2_000, 22_000);
    let base = serve(requests(small), small as usize + 1);
    let more = serve(requests(large), large as usize + 1);
    let per_append = more.saturating_sub(base) as f64 / (large - small) as f64;
    println!(
        "{base} allocations for {small} appends, {more} for {large}: {per_append:.4} per append"
    );
    assert!(
        per_append < 0.1,
        "{per_append:.4} allocations per append ({base} for {small} appends, {more} for {large})"
    );
}
