//! Events per second the collector's model ingests on one core.
//!
//! Synthetic workloads over 16 devices, each fed in batches of 2^20 events
//! both to a fresh model (`fresh/`: the first touch of every page and every
//! allocation it costs are measured) and to one that has seen the same
//! events before (`warm/`: a long recording's steady state):
//! - `storm_4k`: order-0 NOPAGE faults on consecutive pages, as a guest
//!   touching a BAR through a 4 KiB-aligned mapping produces;
//! - `mix`: 4 KiB, 2 MiB and 1 GiB faults, fallbacks retried at the next
//!   size down, and a zap every 4096 faults per device whose pages fault
//!   back in;
//! - `scatter_4k`: order-0 faults on random pages of each 32 GiB BAR, the
//!   worst case for dense per-page counts (a cache miss and, early on, a new
//!   chunk per fault). Not a target; it shows what the layout costs there.
//!
//! `read/` is what a ring reader does per record before the model sees it:
//! decode the record's bytes and add the event to the drain's batch.
//!
//! `snapshot/` is what a live reader (`top`, `serve`) pays per refresh: one
//! `Model::snapshot` of the 16 devices after the `mix`. `projection/` is
//! what `top` adds while a device view is open: that device's document and
//! verdict, worded for the panel, once per refresh (a debug build takes
//! about 25 ms for a 1 GiB BAR faulted page by page, 131,072 to 262,144
//! pages).
//!
//! Time is the thread's CPU time (`support/cpu_time.rs`), so throughput is
//! events per second on one core even when other work shares the machine.

#![expect(
    unused_crate_dependencies,
    reason = "a benchmark uses a few of the package's dependencies"
)]

use std::{collections::HashMap, hint::black_box};

#[path = "support/cpu_time.rs"]
mod cpu_time;
#[path = "../tests/fixture/mod.rs"]
mod fixture;

use cpu_time::ThreadCpuTime;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fixture::{BAR2_BYTES, DEVICES, bdf, model};
use vfio_trace::{
    event::Event,
    probe::records::{Decoder, Record},
    top::projection::of_model,
};
use vfio_trace_common::{FaultEvent, FaultInVma, TaskEvent, VmaEvent, ZapEvent, vm_fault};

const EVENTS: usize = 1 << 20;
/// Events a ring drain hands over for one device before the next.
const BURST: usize = 32;
const BAR2_PAGES: u64 = BAR2_BYTES >> 12;
/// `vm_pgoff` of a mapping of BAR 2 from its start (vfio region offset, 6.12+).
const ZAP_EVERY: u64 = 4096;

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fault(dev: u32, page: u64, order: u32, result: u32, latency_ns: u64, at_ns: u64) -> FaultEvent {
    let mut e = fixture::fault(dev, page, order, result);
    e.latency_ns = latency_ns;
    e.start_ns = at_ns;
    e.pid = 1000 + dev;
    e.tid = e.pid + (page & 3) as u32;
    e
}

/// The device of the `i`th event: devices take turns, `BURST` events each.
fn burst_device(i: usize) -> u32 {
    u32::try_from(i / BURST).expect("fewer than 2^32 bursts") % DEVICES
}

/// The `i`th event: a mapped 4 KiB fault of `latency_ns`, 100 ns after the last.
fn mapped_4k(dev: u32, page: u64, latency_ns: u64, i: usize) -> Event {
    Event::Fault(fault(
        dev,
        page,
        0,
        vm_fault::NOPAGE,
        latency_ns,
        i as u64 * 100,
    ))
}

fn tasks() -> Vec<Event> {
    (0..DEVICES)
        .map(|d| {
            let mut t = TaskEvent::zeroed();
            t.pid = 1000 + d;
            t.tid = t.pid;
            t.comm[..4].copy_from_slice(b"qemu");
            Event::Task(t)
        })
        .collect()
}

/// Sequential order-0 faults; each device walks its own BAR 2.
fn storm() -> Vec<Event> {
    let mut events = tasks();
    let mut next = [0u64; DEVICES as usize];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut i = 0;
    while events.len() < EVENTS {
        let dev = burst_device(i);
        let page = next[dev as usize];
        next[dev as usize] += 1;
        let lat = 2000 + rng.next() % 4000;
        events.push(mapped_4k(dev, page, lat, i));
        i += 1;
    }
    events
}

/// Per device: what it faulted since its last zap, where its sequential walk is.
#[derive(Clone, Copy, Default)]
struct Walk {
    cursor: u64,
    faults: u64,
    zap_from: u64,
}

/// Orders 0/9/18 (70/27/3 %), fallbacks, periodic zaps and their refaults.
fn mix() -> Vec<Event> {
    let mut events = tasks();
    let mut walks = [Walk::default(); DEVICES as usize];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut i = 0usize;
    while events.len() < EVENTS {
        let dev = burst_device(i);
        i += 1;
        let at = i as u64 * 100;
        let w = &mut walks[dev as usize];
        let r = rng.next();
        let nopage = vm_fault::NOPAGE;
        let fallback = vm_fault::FALLBACK;
        let mut push = |page, order, result, lat| {
            events.push(Event::Fault(fault(dev, page, order, result, lat, at)));
        };
        match r % 100 {
            0..70 => {
                push(w.cursor, 0, nopage, 2000 + r % 4000);
                w.cursor += 1;
            }
            70..97 => {
                let page = w.cursor.next_multiple_of(512) % BAR2_PAGES;
                if r.is_multiple_of(8) {
                    // The 2 MiB size was refused: the kernel retries at 4 KiB.
                    push(page, 9, fallback, 800);
                    push(page, 0, nopage, 3000);
                    w.cursor = page + 1;
                } else {
                    push(page, 9, nopage, 20_000 + r % 40_000);
                    w.cursor = page + 512;
                }
            }
            _ => {
                let page = w.cursor.next_multiple_of(1 << 18) % BAR2_PAGES;
                if r.is_multiple_of(4) {
                    push(page, 18, fallback, 1500);
                    push(page, 9, nopage, 30_000);
                    w.cursor = page + 512;
                } else {
                    push(page, 18, nopage, 5_000_000 + r % 10_000_000);
                    w.cursor = page + (1 << 18);
                }
            }
        }
        if w.cursor >= BAR2_PAGES {
            w.cursor = 0;
            w.zap_from = 0;
        }
        w.faults += 1;
        if w.faults.is_multiple_of(ZAP_EVERY) {
            // Zap what was walked since the last zap and walk it again, so
            // the next faults are refaults; the walk then goes on past it.
            let end = w.cursor.max(w.zap_from + 1);
            let mut z = ZapEvent::zeroed();
            z.device = bdf(dev).key();
            z.range_start = (2 << 40) + (w.zap_from << 12);
            z.range_len = (end - w.zap_from) << 12;
            z.start_ns = at + 50;
            z.latency_ns = 40_000;
            z.pages = end - w.zap_from;
            z.vmas = 1;
            z.pid = 1000 + dev;
            z.comm[..4].copy_from_slice(b"qemu");
            events.push(Event::Zap(z));
            w.cursor = w.zap_from;
            w.zap_from = end;
        }
    }
    events.truncate(EVENTS);
    events
}

/// Order-0 faults on random pages of each device's BAR 2.
fn scatter() -> Vec<Event> {
    let mut events = tasks();
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let mut i = 0;
    while events.len() < EVENTS {
        let dev = burst_device(i);
        let r = rng.next();
        let lat = 2000 + r % 4000;
        let page = (r >> 16) % BAR2_PAGES;
        events.push(mapped_4k(dev, page, lat, i));
        i += 1;
    }
    events
}

fn ingest(c: &mut Criterion<ThreadCpuTime>) {
    let workloads = [
        ("storm_4k", storm()),
        ("mix", mix()),
        ("scatter_4k", scatter()),
    ];
    // A new model per batch: first touches and their allocations included.
    let mut fresh = c.benchmark_group("fresh");
    fresh.sample_size(10);
    fresh.throughput(Throughput::Elements(EVENTS as u64));
    for (name, events) in &workloads {
        fresh.bench_function(*name, |b| {
            b.iter_batched(
                model,
                |mut m| {
                    for e in events {
                        m.ingest(black_box(e));
                    }
                    m
                },
                BatchSize::PerIteration,
            );
        });
    }
    fresh.finish();
    // One model that has seen the workload before, as in a long recording:
    // the same pages, zaps and refaults again.
    let mut warm = c.benchmark_group("warm");
    warm.sample_size(10);
    warm.throughput(Throughput::Elements(EVENTS as u64));
    for (name, events) in &workloads {
        let mut m = model();
        for e in events {
            m.ingest(e);
        }
        warm.bench_function(*name, |b| {
            b.iter(|| {
                for e in events {
                    m.ingest(black_box(e));
                }
            });
        });
    }
    warm.finish();
}

/// The bytes of a plain-data record.
fn bytes_of<T>(v: &T) -> Vec<u8> {
    // SAFETY: viewing a plain-data struct as its bytes.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
        .to_vec()
}

/// The storm's faults as the programs write them: a mapping record before a
/// thread's first fault in each mapping, then the small fault records.
fn storm_records() -> Vec<Vec<u8>> {
    let mut last: HashMap<u32, VmaEvent> = HashMap::new();
    let mut records = Vec::new();
    for e in storm() {
        let Event::Fault(f) = e else { continue };
        let Some(small) = FaultInVma::of(&f) else {
            records.push(bytes_of(&f));
            continue;
        };
        let v = VmaEvent::of(&f);
        if last.get(&f.tid) != Some(&v) {
            records.push(bytes_of(&v));
            last.insert(f.tid, v);
        }
        records.push(bytes_of(&small));
    }
    records
}

/// What a ring reader does per record before the model sees it: decode the
/// record's bytes into an `Event` and add it to the drain's batch.
fn read(c: &mut Criterion<ThreadCpuTime>) {
    let records = storm_records();
    let mut group = c.benchmark_group("read");
    group.sample_size(10);
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("storm_4k", |b| {
        b.iter(|| {
            let mut decoder = Decoder::default();
            let mut batch = Vec::with_capacity(4096);
            let mut n = 0;
            for r in &records {
                if let Record::Event(e) = decoder.decode(black_box(r)) {
                    batch.push(e);
                }
                if batch.len() == 4096 {
                    n += black_box(&batch).len();
                    batch = Vec::with_capacity(4096);
                }
            }
            n
        });
    });
    group.finish();
}

fn snapshot(c: &mut Criterion<ThreadCpuTime>) {
    let mut m = model();
    for e in &mix() {
        m.ingest(e);
    }
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    group.bench_function("mix", |b| b.iter(|| m.snapshot(black_box(1))));
    group.finish();
    let mut group = c.benchmark_group("projection");
    group.sample_size(10);
    group.bench_function("mix", |b| {
        b.iter(|| of_model(&m, black_box(bdf(0)), None, true));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = ingest, read, snapshot
}
criterion_main!(benches);
