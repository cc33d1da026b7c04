# top's interactive view in tmux: Debian's tmux staged in /mnt/host/tmux, run
# through its own loader. Sourced after truth.sh ($DEV, $DEV2). Writes
# screen.N (captures while exercise runs), tmux-top.status (top's exit status,
# written by the pane), tmux.exited (0 once the session is gone after `q`)
# and tmux.probes (vfio probes left afterwards).
TM=/mnt/host/tmux
TMLD=""
for l in $TM/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 $TM/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; do
  [ -f $l ] && TMLD=$l
done
# tmux needs a UTF-8 locale: libc-bin's C.UTF-8, found through LOCPATH.
tmx() {
  LOCPATH=$TM/usr/lib/locale $TMLD --library-path $TM/lib/x86_64-linux-gnu:$TM/usr/lib/x86_64-linux-gnu \
    $TM/usr/bin/tmux -u -S /tmp/vfio-trace.tmux "$@"
}
export TERM=screen TERMINFO_DIRS=$TM/lib/terminfo:$TM/usr/share/terminfo
[ -e /dev/pts/ptmx ] || { mkdir -p /dev/pts && mount -t devpts devpts /dev/pts; }
probes() { cat /sys/kernel/debug/kprobes/list /sys/kernel/tracing/enabled_functions 2>/dev/null | grep -c vfio_pci_mmap; }

tmx new-session -d -x 160 -y 45 \
  "vfio-trace top --interval 1 2>$OUT/tmux-top.stderr; echo \$? >$OUT/tmux-top.status" 2>tmux.stderr
# top attaches in a few seconds; then its table lists both devices.
for i in $(seq 60); do
  tmx capture-pane -p > screen.0 2>>tmux.stderr
  grep -q "$DEV2" screen.0 && break
  sleep 0.5
done
# Ten 16 MiB walks half a second apart: faults in every one-second window.
STEPS=""
for i in $(seq 10); do STEPS="$STEPS touch:4k:16m:4k sleep:500"; done
vfio-trace exercise --device $DEV --json $STEPS > tmux-exercise.json 2> tmux-exercise.stderr &
EX=$!
n=0
while kill -0 $EX 2>/dev/null; do
  sleep 1
  n=$((n + 1))
  tmx capture-pane -p > screen.$n 2>>tmux.stderr
done
wait $EX
echo $? > tmux-exercise.status
tmx send-keys q 2>>tmux.stderr
echo 1 > tmux.exited
for i in $(seq 40); do
  tmx has-session 2>/dev/null || { echo 0 > tmux.exited; break; }
  sleep 0.25
done
probes > tmux.probes
