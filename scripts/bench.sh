#!/usr/bin/env bash
# `make bench`: every operation of rust_wq's workqueue layer timed beside its C
# twin (bench/rust_wq_ctwin.c, the same kernel calls from C), the kernel's own
# lib/test_workqueue.c per affinity scope, and throughput in guest
# instructions per item, all in one VM boot on a release-config kernel.
#
# The release kernel (scripts/kernel-release.config: the test kernel's config
# without its debug options) is built on first use (about 6 minutes on 2
# cores) and cached in ~/.cache/rust_wq/build-7.3-release-<hash>; the debug
# kernel stays the one `make check` uses.  The module and the twin are built
# for the booted kernel in build/bench-<kernel tree name>/ (from a copy of the
# sources), so the debug build in the tree is left alone.
#
# By default the VM runs with QEMU's `-icount shift=0,sleep=off`: the guest
# clock advances one nanosecond per instruction, so the latency percentiles
# are instruction counts and nearly deterministic, and elapsed guest time per
# completed item is the guest instructions spent on it.
#
# Environment / make variables:
#   BENCH_KERNEL      release (default) or debug (the test kernel, for reference)
#   KDIR              a kernel build tree of your own (then BENCH_KERNEL is ignored)
#   BENCH_ITEMS       rounds per run and thread (default 1000)
#   BENCH_REPEATS     repeats of every measurement (default 3)
#   BENCH_CPUS        guest CPUs (default 4)
#   BENCH_SETS        which parts: any of "ops scopes tput" (default all three)
#   BENCH_ICOUNT      1 (default) boots with QEMU's icount; 0 plain TCG/KVM
#   BENCH_ICOUNT_OPTS the icount options (default "-icount shift=0,sleep=off")
#   BENCH_VM_TIMEOUT  seconds for the whole VM (default: scaled to the work)
#   BENCH_VERBOSE     1: also record the guest's kernel console in the raw log
#   RUST_WQ_BENCH_RUN_TIMEOUT  seconds per insmod / wqctl run in the guest
#
# Writes results/bench-<kernel>-<UTC timestamp>.{txt,csv,json,log,svg} (the
# tables; every figure as CSV and JSON; the raw guest log; the picture) and
# copies the picture to results/bench-latest-<kernel>.svg, which the README shows.
# Exit status: 0 when every run succeeded and the kernel log is clean;
# non-zero otherwise (124 when the VM timed out).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kernel="${BENCH_KERNEL:-release}"
items="${BENCH_ITEMS:-1000}"
repeats="${BENCH_REPEATS:-3}"
cpus="${BENCH_CPUS:-4}"
icount="${BENCH_ICOUNT:-1}"
sets="${BENCH_SETS:-ops scopes tput}"
[[ "$items" =~ ^[1-9][0-9]*$ ]] && [ "$items" -le 1000000 ] ||
	die "BENCH_ITEMS must be 1..1000000 (got '$items')"
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEATS must be a positive integer (got '$repeats')"
[[ "$cpus" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CPUS must be a positive integer (got '$cpus')"
command -v python3 >/dev/null || die "python3 is needed to build the report"

start=$SECONDS
if [ -n "${KDIR:-}" ]; then
	kernel=custom
	log "bench: using the kernel tree KDIR=$KDIR"
	bash "$RUST_WQ_ROOT/scripts/setup.sh" deps
else
	case "$kernel" in
	release)
		KDIR="$(bash "$RUST_WQ_ROOT/scripts/setup.sh" bench-kdir)"
		[ -f "$KDIR/.rust_wq-built" ] ||
			log "bench: the release-config kernel is not built yet: building it once (cached in $KDIR)"
		bash "$RUST_WQ_ROOT/scripts/setup.sh" bench-kernel ;;
	debug)
		KDIR="$KBUILD_DIR_DEFAULT"
		bash "$RUST_WQ_ROOT/scripts/setup.sh" all ;;
	*) die "BENCH_KERNEL must be release or debug (got '$kernel')" ;;
	esac
fi
export KDIR
c_ko="$KDIR/lib/test_workqueue.ko"
[ -f "$c_ko" ] || die "$c_ko not found: the kernel tree needs CONFIG_TEST_WORKQUEUE=m"

# The module and the C twin, built for this kernel from a copy of the sources
# (kbuild's MO= needs a source tree without in-tree build outputs, and the
# tree's own build is for the debug kernel).  `cp -p` keeps the timestamps, so
# the next build is incremental.
kodir="$RUST_WQ_ROOT/build/bench-$(basename "$KDIR")"
mkdir -p "$kodir"
log "bench: building rust_wq.ko and rust_wq_ctwin.ko for $(basename "$KDIR") in ${kodir#"$RUST_WQ_ROOT"/}"
rm -rf "$kodir/src" "$kodir/bench" "$kodir/include"
(cd "$RUST_WQ_ROOT" && cp -p --parents Kbuild rust_wq.rs "$kodir"/ &&
	find src bench include -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' \) \
		-exec cp -p --parents {} "$kodir"/ \;) || die "cannot copy the sources to $kodir"
(toolchain_env && set +eu && make --no-print-directory -C "$KDIR" M="$kodir" modules) \
	>"$kodir/build.log" 2>&1 || { tail -n 30 "$kodir/build.log" >&2; die "module build failed, see $kodir/build.log"; }
log "bench: building wqctl"
make --no-print-directory -C "$RUST_WQ_ROOT" wqctl NO_SETUP=1 >"$kodir/wqctl-build.log" 2>&1 ||
	{ tail -n 30 "$kodir/wqctl-build.log" >&2; die "wqctl build failed, see $kodir/wqctl-build.log"; }

# Whole-VM budget: boot plus, per 1000 items and repeat, about 40 s of runs
# under icount, with a wide margin.
kunits=$(((items + 999) / 1000))
vm_timeout="${BENCH_VM_TIMEOUT:-$((300 + repeats * kunits * 300))}"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
outdir="$RUST_WQ_ROOT/results"
mkdir -p "$outdir"
base="$outdir/bench-$kernel-$stamp"
raw="$base.log"

qemu=()
icount_opts="${BENCH_ICOUNT_OPTS:--icount shift=0,sleep=off}"
[ "$icount" = 1 ] && qemu=(--qemu-opts "$icount_opts")
[ "${BENCH_VERBOSE:-0}" = 1 ] && qemu+=(--verbose)
log "bench: $kernel kernel, items=$items repeats=$repeats cpus=$cpus sets='$sets' icount=$icount${qemu[1]:+ ($icount_opts)} vm timeout ${vm_timeout}s"
log "bench: raw guest log -> $raw"

vm_start=$SECONDS
set +e
RUST_WQ_BENCH_SETS="$sets" bash "$RUST_WQ_ROOT/scripts/vm.sh" --kdir "$KDIR" --cpus "$cpus" \
	--timeout "$vm_timeout" "${qemu[@]}" -- \
	"bash $RUST_WQ_ROOT/scripts/bench-guest.sh $RUST_WQ_ROOT $kodir $items $repeats $c_ko" \
	2>&1 | tee "$raw" | grep --line-buffered -E '^\[bench-guest\]|^RWQ-BENCH-(FAIL|SCAN|DONE)|^\[rust_wq\]' |
	while IFS= read -r line; do printf '[%4d s] %s\n' $((SECONDS - vm_start)) "$line"; done >&2
rc=${PIPESTATUS[0]}
set -e
vm_wall=$((SECONDS - vm_start))
wall=$((SECONDS - start))

report_rc=0
python3 "$RUST_WQ_ROOT/scripts/bench-report.py" --raw "$raw" --out "$base" --kernel "$kernel" \
	--items "$items" --repeats "$repeats" --cpus "$cpus" --qemu-opts "${qemu[1]:-}" \
	--vm-status "$rc" --wall "$wall" --vm-wall "$vm_wall" || report_rc=$?
[ -f "$base.svg" ] && cp "$base.svg" "$outdir/bench-latest-$kernel.svg"

log "bench: wrote $base.{txt,csv,json,log,svg} (wall time ${wall} s, of which VM ${vm_wall} s)"
if [ $rc -ne 0 ]; then
	log "bench: FAILED (VM status $rc)"
	exit $rc
fi
if [ $report_rc -ne 0 ]; then
	log "bench: FAILED (see the FAIL lines above and $raw)"
	exit 1
fi
log "bench: OK"
