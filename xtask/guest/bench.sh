# The guest side of `cargo xtask bench` (xtask/src/bench). Sourced after
# truth.sh, which gives T, HANDLER, DEV, truth_handler and truth_save.
#
# Per scenario, in $BENCH/NAME, for each round R (0 is the warm-up) and mode M
# (untraced, tracefs, record, events, floor-fentry, floor-kprobe, bpftrace):
# M.R.json (exercise's JSON), M.R.stderr, M.R.status, M.R.wall (/proc/uptime
# before and after the command); also M.R.record.json for every mode that runs
# vfio-trace record, tracefs.R.vt_fault.hist /
# tracefs.R.vt_ret.hist, and events.R.lines: the lines of record's --events
# file, then its fault lines (the file itself is deleted to keep the share small).
# bpftrace's own files are in $BENCH/bpftrace.
KPROBES=/sys/kernel/debug/kprobes/list
BENCH=/mnt/host/out/bench
BT=/mnt/host/bpftrace

uptime_now() { read -r up _ </proc/uptime; echo "$up"; }

# A process that has exited but is not reaped yet is a zombie: kill -0 still
# succeeds on it, so look at its state.
alive() { [ -d /proc/$1 ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null; }

bench_begin() {
  mkdir -p $BENCH
  # serve listens on loopback.
  ip link set lo up
  # vfio-trace runs from the guest's RAM, as from a local disk. Run from the
  # 9p share, every new process paged its code in from the host, a record
  # run mid-phase among them, and untraced rounds scattered by ±20 %.
  mkdir -p /tmp/bench-bin && cp /mnt/host/bin/vfio-trace /tmp/bench-bin/ &&
    PATH=/tmp/bench-bin:$PATH
  uname -r >$BENCH/release
  grep -c ^processor /proc/cpuinfo >$BENCH/cpus
  echo $HANDLER >$BENCH/handler
  # BPF run-time stats cost the programs two clock reads a run: off for the
  # timed rounds, on for one separate run per scenario (bench_stats).
  echo 0 >/proc/sys/kernel/bpf_stats_enabled
  cat $KPROBES >$BENCH/kprobes.before
}

# bench_mode MODE ROUND PHASES...: exercise once in MODE, in the current directory.
# Probes are set up before the clock starts and removed after it stops.
bench_mode() {
  mode=$1 r=$2
  shift 2
  if [ $mode = tracefs ]; then
    TRIGGERS=""
    truth_handler && echo 1 >$T/events/kprobes/enable
  fi
  start=$(uptime_now)
  if [ $mode = record ]; then
    vfio-trace record -o "record.$r.record.json" -- \
      vfio-trace exercise --device "$DEV" --json "$@" >"record.$r.json" 2>"record.$r.stderr"
  elif [ $mode = events ]; then
    vfio-trace record -o "events.$r.record.json" --events "events.$r.events.jsonl" -- \
      vfio-trace exercise --device "$DEV" --json "$@" >"events.$r.json" 2>"events.$r.stderr"
  elif [ $mode = serve ]; then
    # serve through the phase, as a Prometheus endpoint runs beside a
    # workload; scraped once after it (the scrape drains the rings first).
    vfio-trace serve --listen 127.0.0.1:9748 --device "$DEV" 2>"serve.$r.serve.stderr" &
    SRV=$!
    for i in $(seq 300); do grep -q serving "serve.$r.serve.stderr" && break; sleep 0.1; done
    vfio-trace exercise --device "$DEV" --json "$@" >"serve.$r.json" 2>"serve.$r.stderr"
    st=$?
    wget -q -O "serve.$r.prom" http://127.0.0.1:9748/metrics
    kill -TERM $SRV
    wait $SRV
    (exit $st)
  elif [ $mode = floor-fentry ] || [ $mode = floor-kprobe ]; then
    # The floor: empty programs on the fault handler, nothing else.
    only=""
    [ $mode = floor-kprobe ] && only=--kprobes-only
    vfio-trace record --floor $only -o "$mode.$r.record.json" -- \
      vfio-trace exercise --device "$DEV" --json "$@" >"$mode.$r.json" 2>"$mode.$r.stderr"
  else
    vfio-trace exercise --device "$DEV" --json "$@" >"$mode.$r.json" 2>"$mode.$r.stderr"
  fi
  echo $? >"$mode.$r.status"
  echo "$start $(uptime_now)" >"$mode.$r.wall"
  [ $mode = tracefs ] && truth_save "tracefs.$r"
  if [ $mode = events ] && [ -f "events.$r.events.jsonl" ]; then
    echo "$(wc -l <"events.$r.events.jsonl") $(grep -c '^{"kind":"fault"' "events.$r.events.jsonl")" >"events.$r.lines"
    rm -f "events.$r.events.jsonl"
  fi
}

# bench_scenario NAME ROUNDS PHASES...: a warm-up round, then ROUNDS rounds of
# the seven modes. Six of them follow a balanced Latin square (Williams's
# design): over six rounds each mode runs once in each place and follows
# each other mode once, so that no mode's after-effects (a detach, a flushed
# file) always land on the same one. serve, the seventh, moves three places
# a round through the seven.
bench_scenario() {
  name=$1 rounds=$2
  shift 2
  OUT=$BENCH/$name
  mkdir -p "$OUT" && cd "$OUT" || return
  r=0
  while [ $r -le $rounds ]; do
    if [ $r = 0 ]; then echo "bench: $name warm-up"; else echo "bench: $name round $r of $rounds"; fi
    case $((r % 6)) in
    0) order="untraced tracefs floor-kprobe record floor-fentry events" ;;
    1) order="tracefs record untraced events floor-kprobe floor-fentry" ;;
    2) order="record events tracefs floor-fentry untraced floor-kprobe" ;;
    3) order="events floor-fentry record floor-kprobe tracefs untraced" ;;
    4) order="floor-fentry floor-kprobe events untraced record tracefs" ;;
    *) order="floor-kprobe untraced floor-fentry tracefs events record" ;;
    esac
    at=$((r * 3 % 7)) i=0 seven=""
    for m in $order; do
      [ $i = $at ] && seven="$seven serve"
      seven="$seven $m"
      i=$((i + 1))
    done
    [ $at = 6 ] && seven="$seven serve"
    order=$seven
    for m in $order; do bench_mode $m $r "$@"; done
    r=$((r + 1))
  done
}

bench_rounds_done() { cat $KPROBES >$BENCH/kprobes.after-rounds; }

# bench_stats NAME PHASES...: one more record run with BPF stats on, for the
# programs' run time (record.stats.record.json); not a timed round.
bench_stats() {
  name=$1
  shift
  cd "$BENCH/$name" || return
  echo 1 >/proc/sys/kernel/bpf_stats_enabled
  cat /proc/sys/kernel/bpf_stats_enabled >$BENCH/bpf_stats
  vfio-trace record -o record.stats.record.json -- \
    vfio-trace exercise --device "$DEV" --json "$@" >record.stats.json 2>record.stats.stderr
  echo 0 >/proc/sys/kernel/bpf_stats_enabled
}

# bpftrace_start: bpftrace from the staged Debian package, kprobe and kretprobe
# on the handler; returns once both are registered.
bpftrace_start() {
  OUT=$BENCH/bpftrace
  mkdir -p $OUT && cd $OUT || return
  LDSO=""
  for l in $BT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 $BT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; do
    [ -f $l ] && LDSO=$l
  done
  [ -n "$LDSO" ] || { echo "no ld-linux-x86-64.so.2 in the staged packages" >failed; return 1; }
  if [ $HANDLER = vfio_pci_mmap_huge_fault ]; then order=arg1; else order=0; fi
  cat >prog.bt <<EOF
kprobe:$HANDLER { @s[tid] = nsecs; @o[tid] = $order; }
kretprobe:$HANDLER /@s[tid]/ {
  @latency_ns = hist(nsecs - @s[tid]);
  @order[@o[tid]] = count();
  @retval[retval] = count();
  delete(@s[tid]);
  delete(@o[tid]);
}
EOF
  base=$(grep -c "$HANDLER" $KPROBES)
  start=$(uptime_now)
  $LDSO --library-path $BT/lib/x86_64-linux-gnu:$BT/usr/lib/x86_64-linux-gnu \
    $BT/usr/bin/bpftrace prog.bt >log 2>&1 &
  BTPID=$!
  i=0
  while [ $(grep -c "$HANDLER" $KPROBES) -lt $((base + 2)) ]; do
    if ! alive $BTPID; then
      echo "bpftrace exited before attaching: $(tail -n 3 log | tr '\n' ' ')" >failed
      return 1
    fi
    i=$((i + 1))
    if [ $i -gt 1200 ]; then
      kill -KILL $BTPID
      echo "bpftrace had not attached after 120 s" >failed
      return 1
    fi
    sleep 0.1
  done
  echo "$start $(uptime_now)" >attach.wall
}

# bench_bpftrace NAME ROUNDS PHASES...: a warm-up and ROUNDS runs under bpftrace.
bench_bpftrace() {
  name=$1 rounds=$2
  shift 2
  cd "$BENCH/$name" || return
  r=0
  while [ $r -le $rounds ]; do
    echo "bench: $name under bpftrace, round $r of $rounds (0 is the warm-up)"
    bench_mode bpftrace $r "$@"
    r=$((r + 1))
  done
}

# bpftrace_stop: SIGINT, then SIGKILL if it is still there after 20 s; what
# stopped it, how long that took and the kprobes registered afterwards go to
# $BENCH/bpftrace.
bpftrace_stop() {
  cd $BENCH/bpftrace || return
  start=$(uptime_now)
  kill -INT $BTPID
  i=0
  while alive $BTPID && [ $i -lt 200 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  if alive $BTPID; then
    kill -KILL $BTPID
    echo "SIGKILL: still running 20 s after SIGINT" >stop
  else
    echo "SIGINT" >stop
  fi
  echo "$start $(uptime_now)" >stop.wall
  wait $BTPID
  sleep 1
  cat $KPROBES >kprobes.after
}
