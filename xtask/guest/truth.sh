# Ground truth from tracefs, independent of BPF: kprobe events with hist
# triggers. Sourced by suite scenarios; $OUT is the scenario's output dir.
T=/sys/kernel/tracing
has() { grep -qE "^[0-9a-f]+ [tT] $1(\s|$)" /proc/kallsyms; }
HANDLER=vfio_pci_mmap_huge_fault
has $HANDLER || HANDLER=vfio_pci_mmap_fault
TRIGGERS=""

# truth_add EVENT PROBE-DEFINITION TRIGGER
truth_add() {
  echo "$2" >> $T/kprobe_events || return 1
  echo "$3" > $T/events/kprobes/$1/trigger || return 1
  TRIGGERS="$TRIGGERS $1"
  eval "TRIGGER_$1='$3'"
}

# truth_handler: kprobe and kretprobe on the fault handler, hists by order and
# by return value (not enabled yet). The bench's tracefs baseline is this alone.
truth_handler() {
  if [ $HANDLER = vfio_pci_mmap_huge_fault ]; then
    truth_add vt_fault "p:vt_fault $HANDLER order=%si:u32" 'hist:keys=order'
  else
    truth_add vt_fault "p:vt_fault $HANDLER" 'hist:keys=common_pid'
  fi
  truth_add vt_ret "r:vt_ret $HANDLER ret=\$retval:u32" 'hist:keys=ret'
}

truth_on() {
  TRIGGERS=""
  truth_handler
  # Inserts and zaps happen for others too: keep the stacks to count only vfio's.
  for s in vmf_insert_pfn vmf_insert_pfn_pmd vmf_insert_pfn_pud remap_pfn_range unmap_mapping_range vfio_pci_zap_and_vma_lock; do
    has $s && truth_add vt_$s "p:vt_$s $s" 'hist:keys=stacktrace'
  done
  # type1's pfn lookups: only DMA maps call it. Its ioctls, by command.
  has vfio_iommu_type1_ioctl && truth_add vt_ioctl "p:vt_ioctl vfio_iommu_type1_ioctl cmd=%si:u32" 'hist:keys=cmd'
  has vaddr_get_pfns && truth_add vt_lookup "p:vt_lookup vaddr_get_pfns" 'hist:keys=common_pid'
  # dma-buf revokes (1) and restores (0), 6.19+.
  has vfio_pci_dma_buf_move && truth_add vt_dmabuf "p:vt_dmabuf vfio_pci_dma_buf_move revoked=%si:u8" 'hist:keys=revoked'
  echo 1 > $T/events/kprobes/enable
}

# truth_save NAME: hist files to $OUT/NAME.<event>.hist, then tear down.
truth_save() {
  echo 0 > $T/events/kprobes/enable
  for e in $TRIGGERS; do
    cat $T/events/kprobes/$e/hist > "$OUT/$1.$e.hist"
    eval "echo \"!\$TRIGGER_$e\"" > $T/events/kprobes/$e/trigger
  done
  echo > $T/kprobe_events
}

# traced NAME EXERCISE-ARGS...: one phase under both record and tracefs.
traced() {
  name=$1; shift
  truth_on
  vfio-trace record --device "$DEV" -o "$OUT/$name.record.json" -- \
    vfio-trace exercise --device "$DEV" --json "$@" > "$OUT/$name.exercise.json" 2> "$OUT/$name.stderr"
  echo $? > "$OUT/$name.status"
  truth_save "$name"
}

# untraced NAME EXERCISE-ARGS...: record only, for timings undisturbed by tracefs.
untraced() {
  name=$1; shift
  vfio-trace record --device "$DEV" -o "$OUT/$name.record.json" -- \
    vfio-trace exercise --device "$DEV" --json "$@" > "$OUT/$name.exercise.json" 2> "$OUT/$name.stderr"
  echo $? > "$OUT/$name.status"
}

DEV=$(basename "$(ls -d /sys/bus/pci/drivers/vfio-pci/0000:* | head -1)")
DEV2=$(basename "$(ls -d /sys/bus/pci/drivers/vfio-pci/0000:* | sed -n 2p)")
