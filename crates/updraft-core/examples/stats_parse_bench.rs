//! Times single-threaded parsing of a 200-event `/stats` body (the shape
//! `bench/stats-ingest.lua` sends) from raw bytes to a `StatsBatch`, and counts
//! heap allocations per event. Prints figures only; nothing is asserted.
//!
//! `cargo run --release -p updraft-core --example stats_parse_bench [events] [rounds]`

// A counting allocator has to implement the unsafe GlobalAlloc trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use updraft_core::model::Millis;

/// Counts allocations so the report can say how many an event costs.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const ACTIONS: [&str; 8] = [
    "app_moved_to_foreground",
    "app_moved_to_background",
    "download_complete",
    "set",
    "update_fail",
    "app_launch_ready",
    "ping",
    "download_fail",
];

fn body(events: usize, now: Millis) -> Vec<u8> {
    let device = "00000001-0000-4000-8000-000000000042";
    let items: Vec<String> = (0..events)
        .map(|e| {
            format!(
                r#"{{"platform":"android","device_id":"{device}","app_id":"com.bench.app","custom_id":"","version_build":"1.0.0","version_code":"10","version_os":"14","version_name":"1.2.0","old_version_name":"","plugin_version":"8.51.14","is_emulator":false,"is_prod":true,"install_source":"google_play","defaultChannel":"","action":"{}","timestamp":{}}}"#,
                ACTIONS[e % ACTIONS.len()],
                now - (events - e) as Millis * 1000
            )
        })
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn parse(bytes: &[u8], now: Millis) -> usize {
    let batch = updraft_core::stats::parse_stats_bytes(bytes, now);
    batch
        .map(|b| b.items.iter().filter(|i| i.is_ok()).count())
        .unwrap_or(0)
}

/// Parse, then the answer the handler sends (per-item results as JSON text).
fn parse_and_answer(bytes: &[u8], now: Millis) -> usize {
    let Ok(batch) = updraft_core::stats::parse_stats_bytes(bytes, now) else {
        return 0;
    };
    let (_, answer) = updraft_core::stats::stats_answer(&batch);
    let text = serde_json::to_vec(&answer).unwrap_or_default();
    std::hint::black_box(text);
    batch.items.iter().filter(|i| i.is_ok()).count()
}

/// Events per second and microseconds per body of `run` over `rounds` rounds.
fn time(rounds: usize, mut run: impl FnMut() -> usize) -> (f64, f64) {
    for _ in 0..rounds / 10 {
        run();
    }
    let started = Instant::now();
    let mut events = 0;
    for _ in 0..rounds {
        events += run();
    }
    let elapsed = started.elapsed().as_secs_f64();
    (events as f64 / elapsed, elapsed * 1e6 / rounds as f64)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let now: Millis = 1_767_225_700_000;
    let bytes = body(events, now);

    let accepted = parse(&bytes, now);
    assert_eq!(accepted, events, "the bench body must be accepted whole");

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    parse(&bytes, now);
    let per_event = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / events as f64;

    let (parse_rate, parse_micros) = time(rounds, || parse(&bytes, now));
    println!(
        "parse {events}-event body ({} bytes), {rounds} rounds: {parse_rate:.0} events/s, \
         {parse_micros:.1} µs per body, {per_event:.1} allocations per event",
        bytes.len(),
    );
    let (answer_rate, answer_micros) = time(rounds, || parse_and_answer(&bytes, now));
    println!(
        "parse + per-item answer as JSON text: {answer_rate:.0} events/s, {answer_micros:.1} µs per body"
    );
}
