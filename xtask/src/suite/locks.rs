//! `memory_lock` waits against tracefs, matched by lock address: two threads per
//! device contend for its `memory_lock` (a reset holds it for writing) on both
//! devices at once, while writers contend for an unrelated file's lock. tracefs
//! pairs each `lock:contention_begin` with the `contention_end` of the same
//! thread and lock address; vfio-trace must count exactly the pairs of each
//! device's own `memory_lock`, with the same total wait.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Ctx, Scenario, TestResult, device, json, num, read_out, status_ok};

pub const SCENARIO: Scenario = Scenario {
    name: "locks",
    guest: concat!(
        include_str!("../../guest/truth.sh"),
        r#"
T=/sys/kernel/tracing
echo 'vt_lockwait u64 lock; u64 wait_ns' >> $T/synthetic_events
B='hist:keys=common_pid,lock_addr:vt_ts0=common_timestamp'
E='hist:keys=common_pid,lock_addr:vt_wait=common_timestamp-$vt_ts0:onmatch(lock.contention_begin).vt_lockwait(lock_addr,$vt_wait)'
W='hist:keys=lock:vals=hitcount,wait_ns:sort=lock'
# The clock bpf_ktime_get_ns reads: in a TCG guest the default per-CPU
# clock drifts from it by several per cent.
CLOCK=$(sed 's/.*\[\(.*\)\].*/\1/' $T/trace_clock)
echo mono > $T/trace_clock
echo "$B" > $T/events/lock/contention_begin/trigger
echo "$E" > $T/events/lock/contention_end/trigger
echo "$W" > $T/events/synthetic/vt_lockwait/trigger
cat > run.sh <<EOS
for i in 1 2 3; do dd if=/dev/zero of=/tmp/vt-lock bs=64k count=512 conv=notrunc 2>/dev/null & done
vfio-trace exercise --device $DEV --json contend:2:8:1m > a.json &
vfio-trace exercise --device $DEV2 --json contend:2:8:1m > b.json
wait
EOS
vfio-trace record -o record.json -- sh run.sh 2> locks.stderr
echo $? > locks.status
cat $T/events/synthetic/vt_lockwait/hist > lockwait.hist
echo "!$W" > $T/events/synthetic/vt_lockwait/trigger
echo "!$E" > $T/events/lock/contention_end/trigger
echo "!$B" > $T/events/lock/contention_begin/trigger
echo '!vt_lockwait u64 lock; u64 wait_ns' >> $T/synthetic_events
echo $CLOCK > $T/trace_clock
rm -f /tmp/vt-lock
echo "$DEV $DEV2" > devices
"#
    ),
    check,
};

/// Contended waits per lock address: (pairs, total wait ns).
type Waits = BTreeMap<u64, (u64, u64)>;

/// Waits from the synthetic event's histogram.
fn waits_by_lock(hist: &str) -> Result<Waits, String> {
    let mut waits = BTreeMap::new();
    for line in hist.lines().filter(|l| l.starts_with("{ lock:")) {
        let field = |name: &str| -> Result<u64, String> {
            line.split(name)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.trim_end_matches('}').parse().ok())
                .ok_or_else(|| format!("no {name} in hist line {line:?}"))
        };
        waits.insert(field("lock:")?, (field("hitcount:")?, field("wait_ns:")?));
    }
    Ok(waits)
}

/// A device's `memory_lock` waits in the record: its lock address, waits and
/// total wait (from the mean: the summary keeps no sum).
fn recorded(doc: &Value, bdf: &str) -> Result<(u64, u64, f64), String> {
    let d = device(doc, bdf)?;
    let address = d["memory_lock_address"]
        .as_str()
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| format!("{bdf}: no memory_lock_address"))?;
    let (mut count, mut total) = (0, 0.0);
    for mode in d["memory_lock"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        let n = num(&mode["count"]);
        count += n;
        total += mode["wait_ns"]["mean"].as_f64().unwrap_or(0.0) * n as f64;
    }
    Ok((address, count, total))
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    let setup = || -> Result<(Value, Waits, String), String> {
        status_ok(ctx, "locks")?;
        Ok((
            json(ctx, "record.json")?,
            waits_by_lock(&read_out(ctx, "lockwait.hist")?)?,
            read_out(ctx, "devices")?,
        ))
    };
    let (doc, truth, devices) = match setup() {
        Ok(v) => v,
        Err(e) => return vec![("locks/run".into(), Err(e))],
    };
    let bdfs: Vec<&str> = devices.split_whitespace().collect();
    if bdfs.len() != 2 {
        return vec![(
            "locks/run".into(),
            Err(format!("two devices expected, got {devices:?}")),
        )];
    }
    let mut results = Vec::new();
    let mut addresses = Vec::new();
    for (i, bdf) in bdfs.into_iter().enumerate() {
        let result = recorded(&doc, bdf).and_then(|(address, count, total)| {
            addresses.push(address);
            let (pairs, wait) = truth.get(&address).copied().unwrap_or((0, 0));
            if count == 0 {
                return Err(format!("{bdf}: no memory_lock wait recorded"));
            }
            if count != pairs {
                return Err(format!(
                    "{bdf}: {count} waits recorded, tracefs paired {pairs} at {address:#x}"
                ));
            }
            // Both tools read the same clock a few µs apart per event, but a
            // TCG vCPU can be descheduled by a busy host between the two reads.
            let slack = 0.05 * wait as f64 + 200_000.0 * pairs as f64;
            if (total - wait as f64).abs() > slack {
                return Err(format!(
                    "{bdf}: {total:.0} ns of waits recorded, tracefs {wait} ns"
                ));
            }
            Ok(())
        });
        results.push((format!("device{i}/waits-match-tracefs"), result));
    }
    let others: u64 = truth
        .iter()
        .filter(|(a, _)| !addresses.contains(a))
        .map(|(_, (pairs, _))| pairs)
        .sum();
    results.push((
        "unrelated-lock-contended".into(),
        if others > 0 {
            Ok(())
        } else {
            Err("no contention on any other lock: the test proves nothing".into())
        },
    ));
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_lines_parse_to_pairs_and_waits() {
        let hist = "# event histogram\n#\n\
            { lock:   18446612683183343240 } hitcount:          3  wait_ns:     123456\n\
            { lock:             4096 } hitcount:          1  wait_ns:          7\n\
            \nTotals:\n    Hits: 4\n";
        let w = waits_by_lock(hist).expect("parse");
        assert_eq!(w[&18_446_612_683_183_343_240], (3, 123_456));
        assert_eq!(w[&4096], (1, 7));
        assert!(waits_by_lock("{ lock: x } hitcount: 1").is_err());
    }
}
