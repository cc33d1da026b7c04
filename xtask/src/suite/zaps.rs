//! Zaps, refaults and `memory_lock` contention, and two devices at once: zaps per
//! decode-off and per reset equal the exercise's count and tracefs, with the
//! right cause; refaulted pages equal pages touched again; contention shows on
//! the right device and mode, and only when provoked; every event lands on the
//! right device, and `--device` keeps the other device's ring empty.

use serde_json::Value;

use super::{Ctx, Scenario, TestResult, device, eq, json, num, read_out, status_ok, truth};
use crate::kernels::Facts;

pub const SCENARIO: Scenario = Scenario {
    name: "zaps",
    guest: concat!(
        include_str!("../../guest/truth.sh"),
        r#"
traced zaps touch:4k:4m:4k decode-off decode-on reset decode-off decode-on refault:4k:4m:4k
traced contend contend:4:10:4m
# 32 threads fault while resets hold memory_lock: the default probes, then
# kprobes only, whose kretprobes run out of instances (10 on one CPU) while
# threads sleep on the lock; every return not seen must be counted.
traced many contend:32:4:1m
for f in record exercise; do mv many.$f.json many-default.$f.json; done
cp many.status many-default.status; cp many.vt_fault.hist many-default.vt_fault.hist
truth_on
vfio-trace record --kprobes-only --device "$DEV" -o many.record.json -- \
  vfio-trace exercise --device "$DEV" --json contend:32:4:1m > many.exercise.json 2> many.stderr
echo $? > many.status
truth_save many
cat > both.sh <<EOS
vfio-trace exercise --device $DEV --json touch:4k:8m:4k > \$1.a.json &
vfio-trace exercise --device $DEV2 --json touch:4k:4m:4k decode-off decode-on > \$1.b.json
wait
EOS
vfio-trace record -o two.record.json -- sh both.sh two 2> two.stderr
echo $? > two.status
vfio-trace record --device "$DEV" -o only.record.json -- sh both.sh only 2> only.stderr
echo $? > only.status
echo "$DEV $DEV2" > devices
"#
    ),
    check,
};

/// dma-buf revokes and restores (6.19+) equal tracefs's count of
/// `vfio_pci_dma_buf_move` by its `revoked` argument and every decode-off
/// zap has its revoke; a kernel without the function has none.
fn dma_buf_moves(d: &Value, hist: Option<&str>) -> Result<(), String> {
    let (revokes, restores) = (
        num(&d["dma_buf"]["revokes_ns"]["count"]),
        num(&d["dma_buf"]["restores_ns"]["count"]),
    );
    let Some(hist) = hist else {
        return eq("dma_buf moves", revokes + restores, 0);
    };
    let hits = truth::by_key(hist);
    eq(
        "dma_buf.revokes",
        revokes,
        hits.get(&1).copied().unwrap_or(0),
    )?;
    eq(
        "dma_buf.restores",
        restores,
        hits.get(&0).copied().unwrap_or(0),
    )?;
    let events = d["zaps"]["events"].as_array().ok_or("no zap events")?;
    for z in events.iter().filter(|z| z["cause"] == "decode-off") {
        if z["dma_buf_revoke_ns"].as_u64().is_none() {
            return Err(format!("decode-off zap without its revoke: {z}"));
        }
    }
    Ok(())
}

/// The exercise turns decode back on after each decode-off: every such
/// zap has the time to its decode-on, on every kernel.
fn decode_on(d: &Value) -> Result<(), String> {
    let events = d["zaps"]["events"].as_array().ok_or("no zap events")?;
    let off: Vec<&Value> = events
        .iter()
        .filter(|z| z["cause"] == "decode-off")
        .collect();
    if off.is_empty() {
        return Err("no decode-off zap".into());
    }
    match off.iter().find(|z| z["decode_on_ns"].as_u64().is_none()) {
        Some(z) => Err(format!("decode-off zap without its decode-on: {z}")),
        None => Ok(()),
    }
}

/// Zap counts and causes against tracefs stacks and the exercise's account.
fn zaps(ctx: &Ctx) -> Vec<TestResult> {
    let run = || -> Result<(Value, Value, String, String), String> {
        status_ok(ctx, "zaps")?;
        Ok((
            json(ctx, "zaps.record.json")?,
            json(ctx, "zaps.exercise.json")?,
            read_out(ctx, &format!("zaps.vt_{}.hist", ctx.facts.zap_function))?,
            read_out(ctx, "devices")?,
        ))
    };
    let (rec, ex, hist, devices) = match run() {
        Ok(v) => v,
        Err(e) => return vec![("zaps/run".into(), Err(e))],
    };
    let dev = devices
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let d = match device(&rec, &dev) {
        Ok(d) => d.clone(),
        Err(e) => return vec![("zaps/run".into(), Err(e))],
    };
    let decode_truth = truth::stack_hits(&hist, "vfio_basic_config_write");
    let reset_truth = truth::stack_hits(&hist, "vfio_pci_core_ioctl");
    let totals = &ex["totals"];
    let causes = &d["zaps"]["causes"];
    let cause = |c: &str| causes[c].as_u64().unwrap_or(0);
    let refault = ex["phases"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["phase"] == "refault"))
        .cloned();
    vec![
        (
            "zaps/equals-tracefs".into(),
            (|| {
                eq(
                    "zaps.count",
                    num(&d["zaps"]["count"]),
                    decode_truth + reset_truth,
                )?;
                eq("zaps.causes.decode-off", cause("decode-off"), decode_truth)?;
                eq("zaps.causes.reset", cause("reset"), reset_truth)
            })(),
        ),
        (
            "zaps/equals-exercise".into(),
            (|| {
                eq(
                    "zaps.count",
                    num(&d["zaps"]["count"]),
                    num(&totals["decode_off"]) + num(&totals["resets"]),
                )?;
                eq(
                    "zaps.causes.decode-off",
                    cause("decode-off"),
                    num(&totals["decode_off"]),
                )?;
                eq("zaps.causes.reset", cause("reset"), num(&totals["resets"]))
            })(),
        ),
        (
            "zaps/refaulted-pages".into(),
            match refault {
                Some(p) => eq(
                    "refaults.pages",
                    num(&d["refaults"]["pages"]),
                    num(&p["touches_second"]),
                ),
                None => Err("no refault phase in the exercise report".into()),
            },
        ),
        (
            "zaps/no-contention-no-wait".into(),
            (|| {
                eq(
                    "memory_lock.read.count",
                    num(&d["memory_lock"]["read"]["count"]),
                    0,
                )?;
                eq(
                    "memory_lock.write.count",
                    num(&d["memory_lock"]["write"]["count"]),
                    0,
                )
            })(),
        ),
        ("zaps/write-hold".into(), write_hold(&d)),
        ("zaps/decode-on".into(), decode_on(&d)),
        (
            "zaps/dma-buf-moves".into(),
            dma_buf_moves(&d, read_out(ctx, "zaps.vt_dmabuf.hist").ok().as_deref()),
        ),
        ("zaps/range-covers-bar".into(), covers_bar2(&d)),
        (
            "zaps/no-lost-events".into(),
            eq("lost_events", num(&rec["lost_events"]), 0),
        ),
    ]
}

/// Every decode-off and reset zap reports how long its writer held
/// `memory_lock`, and that covers the zap itself.
/// Every zap's byte range covers the BAR the workload mapped (BAR 2: vfio
/// region offsets 2 << 40 up to 3 << 40; a length of 0 runs to the end).
fn covers_bar2(d: &Value) -> Result<(), String> {
    let events = d["zaps"]["events"].as_array().ok_or("no zap events")?;
    for (i, z) in events.iter().enumerate() {
        let (start, len) = (num(&z["range_start"]), num(&z["range_len"]));
        let end = if len == 0 {
            u64::MAX
        } else {
            start.saturating_add(len)
        };
        if start > 2 << 40 || end < 3 << 40 {
            return Err(format!("zap {i}: range {start:#x}+{len:#x} misses BAR 2"));
        }
    }
    Ok(())
}

fn write_hold(d: &Value) -> Result<(), String> {
    let events = d["zaps"]["events"].as_array().ok_or("no zap events")?;
    eq(
        "zaps.write_hold_ns.count",
        num(&d["zaps"]["write_hold_ns"]["count"]),
        events.len() as u64,
    )?;
    for (i, z) in events.iter().enumerate() {
        let (hold, latency) = (num(&z["write_hold_ns"]), num(&z["latency_ns"]));
        if hold == u64::MAX || hold < latency {
            return Err(format!(
                "zap {i}: write hold {hold} ns does not cover its {latency} ns"
            ));
        }
    }
    Ok(())
}

/// Threads faulting through resets wait on `memory_lock` for reading.
fn contend(ctx: &Ctx) -> Vec<TestResult> {
    let result = (|| {
        status_ok(ctx, "contend")?;
        let rec = json(ctx, "contend.record.json")?;
        let devices = read_out(ctx, "devices")?;
        let dev = devices.split_whitespace().next().unwrap_or_default();
        let d = device(&rec, dev)?;
        eq(
            "zaps.causes.reset",
            d["zaps"]["causes"]["reset"].as_u64().unwrap_or(0),
            10,
        )?;
        let reads = num(&d["memory_lock"]["read"]["count"]);
        if reads == 0 || reads == u64::MAX {
            return Err(
                "no read wait on memory_lock while 4 threads faulted through 10 resets".into(),
            );
        }
        if num(&d["memory_lock"]["read"]["wait_ns"]["min"]) == 0 {
            return Err("read waits of 0 ns".into());
        }
        Ok(())
    })();
    vec![("contend/read-waits".into(), result)]
}

/// What a device's exercise did, as the record must show it.
fn expect_device(facts: &Facts, d: &Value, exercise: &Value) -> Result<(), String> {
    let totals = &exercise["totals"];
    if facts.remaps_whole_vma {
        eq(
            "inserts.remap",
            num(&d["inserts"]["remap"]),
            num(&totals["mmaps"]),
        )?;
    } else {
        eq(
            "faults.by_order.0",
            num(&d["faults"]["by_order"]["0"]),
            num(&totals["touches"]),
        )?;
        eq(
            "inserts.pte",
            num(&d["inserts"]["pte"]),
            num(&totals["touches"]),
        )?;
    }
    eq(
        "zaps.count",
        num(&d["zaps"]["count"]),
        num(&totals["decode_off"]) + num(&totals["resets"]),
    )
}

fn ring(doc: &Value, name: &str) -> u64 {
    doc["rings"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["device"] == name))
        .map_or(u64::MAX, |r| num(&r["events"]))
}

fn two_devices(ctx: &Ctx) -> Vec<TestResult> {
    let load = |name: &str| -> Result<(Value, Value, Value, String, String), String> {
        status_ok(ctx, name)?;
        let devices = read_out(ctx, "devices")?;
        let mut it = devices.split_whitespace();
        let (a, b) = (
            it.next().unwrap_or_default().to_owned(),
            it.next().unwrap_or_default().to_owned(),
        );
        if b.is_empty() {
            return Err("the guest has one vfio device, not two".into());
        }
        Ok((
            json(ctx, &format!("{name}.record.json"))?,
            json(ctx, &format!("{name}.a.json"))?,
            json(ctx, &format!("{name}.b.json"))?,
            a,
            b,
        ))
    };
    let both = load("two").and_then(|(rec, ea, eb, a, b)| {
        expect_device(ctx.facts, device(&rec, &a)?, &ea).map_err(|e| format!("{a}: {e}"))?;
        expect_device(ctx.facts, device(&rec, &b)?, &eb).map_err(|e| format!("{b}: {e}"))?;
        eq("shared ring events", ring(&rec, "shared"), 0)?;
        eq("unattributed_faults", num(&rec["unattributed_faults"]), 0)?;
        eq("unattributed_zaps", num(&rec["unattributed_zaps"]), 0)?;
        eq("lost_events", num(&rec["lost_events"]), 0)
    });
    let only = load("only").and_then(|(rec, ea, _, a, b)| {
        let listed: Vec<&str> = rec["devices"]
            .as_array()
            .map(|ds| ds.iter().filter_map(|d| d["bdf"].as_str()).collect())
            .unwrap_or_default();
        if listed != [a.as_str()] {
            return Err(format!("devices {listed:?}, expected only {a}"));
        }
        expect_device(ctx.facts, device(&rec, &a)?, &ea).map_err(|e| format!("{a}: {e}"))?;
        eq(&format!("ring events of {b}"), ring(&rec, &b), 0)?;
        eq("shared ring events", ring(&rec, "shared"), 0)
    });
    vec![
        ("two-devices/attributed".into(), both),
        ("two-devices/filtered-in-kernel".into(), only),
    ]
}

/// Faults the handler was entered for (tracefs kprobe hits) equal the faults
/// recorded plus the returns counted as missed: no fault vanishes silently.
/// Where the handler is traced with fexit nothing can be missed at all.
fn many_threads(ctx: &Ctx, name: &str) -> TestResult {
    let result = (|| {
        status_ok(ctx, name)?;
        let rec = json(ctx, &format!("{name}.record.json"))?;
        let entered = truth::total(&read_out(ctx, &format!("{name}.vt_fault.hist"))?)
            .ok_or("no Hits in the tracefs fault hist")?;
        let faults: u64 = rec["devices"]
            .as_array()
            .map_or(0, |ds| ds.iter().map(|d| num(&d["faults"]["total"])).sum());
        let missed = num(&rec["losses"]["missed_return"]);
        eq(
            "faults + missed returns vs tracefs entries",
            faults + missed,
            entered,
        )?;
        let fexit = rec["probes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "fault_return"))
            .is_some_and(|p| p["kind"] == "fexit");
        if fexit {
            eq("missed returns under fexit", missed, 0)?;
        }
        Ok(())
    })();
    (format!("{name}/every-miss-counted"), result)
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    let mut out = zaps(ctx);
    out.extend(contend(ctx));
    out.push(many_threads(ctx, "many-default"));
    out.push(many_threads(ctx, "many"));
    out.extend(two_devices(ctx));
    out
}
