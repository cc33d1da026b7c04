# The guest side of `cargo xtask bench` (xtask/src/bench). Sourced after
# truth.sh, which gives T, HANDLER, DEV, truth_handler and truth_save.
#
# Per scenario, in $BENCH/NAME, for each round R (0 is the warm-up) and mode M
# (untraced, tracefs, record): M.R.json (exercise's JSON), M.R.stderr,
# M.R.status, M.R.wall (/proc/uptime before and after the command); also
# record.R.record.json and tracefs.R.vt_fault.hist / tracefs.R.vt_ret.hist.
KPROBES=/sys/kernel/debug/kprobes/list
BENCH=/mnt/host/out/bench

uptime_now() { read -r up _ </proc/uptime; echo "$up"; }

bench_begin() {
  mkdir -p $BENCH
  uname -r >$BENCH/release
  grep -c ^processor /proc/cpuinfo >$BENCH/cpus
  echo $HANDLER >$BENCH/handler
  # record reads the run time of its programs when the kernel counts it.
  echo 1 >/proc/sys/kernel/bpf_stats_enabled
  cat /proc/sys/kernel/bpf_stats_enabled >$BENCH/bpf_stats
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
  else
    vfio-trace exercise --device "$DEV" --json "$@" >"$mode.$r.json" 2>"$mode.$r.stderr"
  fi
  echo $? >"$mode.$r.status"
  echo "$start $(uptime_now)" >"$mode.$r.wall"
  [ $mode = tracefs ] && truth_save "tracefs.$r"
}

# bench_scenario NAME ROUNDS PHASES...: a warm-up round, then ROUNDS rounds of
# the three modes, the order rotating so that none always follows another.
bench_scenario() {
  name=$1 rounds=$2
  shift 2
  OUT=$BENCH/$name
  mkdir -p "$OUT" && cd "$OUT" || return
  r=0
  while [ $r -le $rounds ]; do
    if [ $r = 0 ]; then echo "bench: $name warm-up"; else echo "bench: $name round $r of $rounds"; fi
    case $((r % 3)) in
    0) order="untraced tracefs record" ;;
    1) order="tracefs record untraced" ;;
    *) order="record untraced tracefs" ;;
    esac
    for m in $order; do bench_mode $m $r "$@"; done
    r=$((r + 1))
  done
}

bench_rounds_done() { cat $KPROBES >$BENCH/kprobes.after-rounds; }
