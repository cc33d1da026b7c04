//! A real client: `vfio-trace record` around Debian's QEMU 7.2 and 10.0
//! assigning the device to a nested VM whose BIOS boots, is reset and boots
//! again (guest/client.sh), then a short `vfio-trace exercise` touch in the same recording. Faults by
//! order, inserts by size and zaps by cause must equal the tracefs ground
//! truth of the same run; every fault QEMU causes comes from type1 pinning
//! the BAR for its DMA map (origin `dma_map`), and the exercise's from a CPU.

use std::collections::BTreeMap;

use super::{
    Ctx, Scenario, TestResult, eq,
    faults::{self, Phase},
    num, read_out, truth,
};
use crate::client::Qemu;

/// The clients, in the order the guest runs them.
pub const CLIENTS: [Qemu; 2] = [Qemu::V7_2, Qemu::V10];

pub const SCENARIO: Scenario = Scenario {
    name: "client",
    guest: concat!(
        include_str!("../../guest/truth.sh"),
        r#"
# client_traced NAME VERSION: the client and a 1 MiB touch, under both record
# and tracefs; the client's progress lines in NAME.client.out, every event in
# NAME.events.jsonl for when a count is off.
client_traced() {
  truth_on
  vfio-trace record --device "$DEV" -o "$OUT/$1.record.json" --events "$OUT/$1.events.jsonl" -- sh -c \
    "sh /mnt/host/client.sh $2 $1 $DEV > $1.client.out &&
     vfio-trace exercise --device $DEV --json touch:4k:1m:4k > $1.exercise.json" 2> "$1.stderr"
  echo $? > "$1.status"
  truth_save "$1"
  cat "$1.client.out"
}
client_traced qemu72 7.2
client_traced qemu10 10
"#
    ),
    check,
};

/// Zaps of a vfio device by cause, from the tracefs stacks of the function
/// each zap calls once. Hot resets also pass through the ioctl handler, so
/// they are named first.
fn truth_causes(hist: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (frames, hits) in truth::stacks(hist) {
        let has = |f: &str| frames.iter().any(|x| x.contains(f));
        let cause = if has("hot_reset") {
            "hot-reset"
        } else if has("vfio_basic_config_write") {
            "decode-off"
        } else if has("vfio_pci_core_ioctl") {
            "reset"
        } else {
            // unmap_mapping_range also runs for other files and regions.
            continue;
        };
        *out.entry(cause.to_owned()).or_default() += hits;
    }
    out
}

fn zaps_match(ctx: &Ctx, name: &str, p: &Phase) -> Result<(), String> {
    let hist = read_out(ctx, &format!("{name}.vt_{}.hist", ctx.facts.zap_function))?;
    let want = truth_causes(&hist);
    let got: BTreeMap<String, u64> = faults::device(p)["zaps"]["causes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), num(v)))
                .filter(|(_, n)| *n != 0)
                .collect()
        })
        .unwrap_or_default();
    if got != want {
        return Err(format!("zaps.causes: recorded {got:?}, tracefs {want:?}"));
    }
    eq(
        "zaps.count",
        num(&faults::device(p)["zaps"]["count"]),
        want.values().sum(),
    )
}

/// Every fault is the exercise's (origin `cpu`) or the client's, made by
/// type1 pinning the BAR for QEMU's DMA map (origin `dma_map`). The
/// exercise's count is its process's: its touches, plus the huge attempts
/// that fell back (a 1 MiB mapping still gets PMD attempts on 6.12).
fn origins(p: &Phase) -> Result<(), String> {
    let d = faults::device(p);
    let f = &d["faults"];
    let exercise_pid = num(&p.exercise["pid"]);
    let (mut exercise, mut client) = (0, 0);
    for proc in d["processes"]
        .as_array()
        .ok_or("no processes in the record")?
    {
        if num(&proc["pid"]) == exercise_pid {
            exercise += num(&proc["faults"]);
        } else {
            client += num(&proc["faults"]);
        }
    }
    if exercise < num(&p.exercise["totals"]["mmaps"]) {
        return Err(format!("{exercise} faults for the exercise's touches"));
    }
    if client == 0 {
        return Err("no fault from the client".into());
    }
    eq(
        "faults.by_origin.cpu",
        num(&f["by_origin"]["cpu"]),
        exercise,
    )?;
    eq(
        "faults.by_origin.dma_map",
        num(&f["by_origin"]["dma_map"]),
        client,
    )?;
    eq(
        "faults.by_origin.other",
        f["by_origin"]["other"].as_u64().unwrap_or(0),
        0,
    )
}

/// `VFIO_IOMMU_MAP_DMA`, as tracefs's hist of the ioctl's `cmd` shows it.
const MAP_DMA: u64 = vfio_trace_common::VFIO_IOMMU_MAP_DMA as u64;

/// QEMU's DMA maps: every one the kernel saw is recorded (of the BAR, or of
/// guest RAM apart), every client fault happened inside a map of the BAR,
/// and the pfn lookups of all maps equal tracefs's `vaddr_get_pfns` count.
fn dma_maps(ctx: &Ctx, name: &str, p: &Phase) -> Result<(), String> {
    let d = faults::device(p);
    let (bar, other) = (&d["dma_maps"], &p.record["other_dma_maps"]);
    let ioctls = truth::by_key(&read_out(ctx, &format!("{name}.vt_ioctl.hist"))?);
    eq(
        "dma_maps.count + other_dma_maps.count",
        num(&bar["count"]) + num(&other["count"]),
        ioctls.get(&MAP_DMA).copied().unwrap_or(0),
    )?;
    if num(&bar["count"]) == 0 {
        return Err("no DMA map of the BAR".into());
    }
    eq(
        "dma_maps.faults",
        num(&bar["faults"]),
        num(&d["faults"]["by_origin"]["dma_map"]),
    )?;
    eq("other_dma_maps.faults", num(&other["faults"]), 0)?;
    let lookups = truth::total(&p.lookup_hist).ok_or("no vaddr_get_pfns hist")?;
    eq(
        "dma_maps.lookups + other_dma_maps.lookups",
        num(&bar["lookups"]) + num(&other["lookups"]),
        lookups,
    )
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    let mut out = Vec::new();
    for q in CLIENTS {
        let name = q.slug();
        let (truth, zaps, origin, maps) = match faults::load(ctx, name) {
            Ok(p) => (
                faults::matches_truth(&p, ctx.facts),
                zaps_match(ctx, name, &p),
                origins(&p),
                dma_maps(ctx, name, &p),
            ),
            Err(e) => (Err(e.clone()), Err(e.clone()), Err(e.clone()), Err(e)),
        };
        out.push((format!("{name}/equals-tracefs"), truth));
        out.push((format!("{name}/zaps-equal-tracefs"), zaps));
        out.push((format!("{name}/origins"), origin));
        out.push((format!("{name}/dma-maps"), maps));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_from_stacks() {
        let hist = "\
{ common_stacktrace:
         unmap_mapping_range+0x5/0x10
         vfio_pci_zap_and_down_write_memory_lock+0x20/0x40 [vfio_pci_core]
         vfio_basic_config_write+0x1/0x2 [vfio_pci_core]
} hitcount:          3
{ common_stacktrace:
         unmap_mapping_range+0x5/0x10
         vfio_pci_core_ioctl+0x20/0x40 [vfio_pci_core]
} hitcount:          2
{ common_stacktrace:
         unmap_mapping_range+0x5/0x10
         __request_region+0x1/0x2
} hitcount:          7
";
        let got = truth_causes(hist);
        assert_eq!(
            got,
            BTreeMap::from([("decode-off".into(), 3), ("reset".into(), 2)])
        );
    }
}
