#!/usr/bin/env bash
# In the guest: load the module and run the torture test (src/torture.rs) once
# per seed, in this one boot; for each run print its KTAP report and every
# kernel-log splat since the run started, each with the seconds from the
# run's "starting" line to the splat.
#
# Usage (host): bash scripts/vm.sh --kdir KDIR -- "bash scripts/torture.sh SECS SEED..."
#
# RUST_WQ_TORTURE_RACES (vm.sh forwards RUST_WQ_* variables): the races to
# provoke, a decimal mask of the RACE_* bits in src/torture/plan.rs (1: re-arm
# while a queue is dropped, 2: retired (drain takes &mut now), 4: enable() against
# cancel_sync(), 8: cancel_sync() from a WQ_MEM_RECLAIM worker; default 13); several
# masks separated by spaces run every seed with each.
#
# *_ONCE warnings are re-armed before each run (debugfs clear_warn_once), so
# each seed can show its own.  lockdep reports once per boot and then turns
# itself off: a later seed cannot show a lockdep splat again.
# Exit status: 0 when every run was clean, 1 otherwise.
set -uo pipefail
export PATH="/usr/sbin:/sbin:/usr/bin:/bin:$PATH"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:?usage: torture.sh SECS SEED...}"
shift
[ $# -gt 0 ] || { echo "usage: torture.sh SECS SEED..." >&2; exit 2; }
ko="${RUST_WQ_KO:-$repo/rust_wq.ko}"
d=/sys/kernel/debug/rust_wq
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
lsmod | grep -q '^rust_wq ' || insmod "$ko" || exit 1
# Splat patterns: those of scripts/dmesg-scan.sh, and the torture's own
# invariant reports ("torture seed N: NAME violated after T ms").
scan_re='WARNING:|BUG:|^BUG |Oops|general protection|possible (circular|recursive) locking|DEBUG_LOCKS_WARN_ON|INFO: |ODEBUG|UBSAN|KFENCE|refcount_t:|list_(add|del) corruption|scheduling while atomic|sleeping function called|workqueue lockup|cannot queue|is flushing|disable count|violated after'
bad=0
read -ra masks <<<"${RUST_WQ_TORTURE_RACES:-13}"
for races in "${masks[@]}"; do for seed in "$@"; do
	echo 1 >/sys/kernel/debug/clear_warn_once 2>/dev/null
	m="rust_wq-torture-marker $seed $(date +%s%N)"
	echo "$m" >/dev/kmsg
	echo "=== seed $seed, $secs s, races $races"
	if ! echo "$seed $secs $races" >"$d/torture"; then
		echo "the write failed"
		bad=1
	fi
	cat "$d/torture_result"
	grep -q '^not ok' "$d/torture_result" && bad=1
	# The splats of this run, with the time since it started.
	dmesg | awk -v m="$m" -v re="$scan_re" '
		f && /torture: seed [0-9]+ for [0-9]+ s: starting/ && t0 == "" {
			t0 = substr($0, 2, index($0, "]") - 2) + 0
		}
		f && $0 ~ re && $0 !~ /torture: (KTAP|ok |not ok|#)/ {
			t = substr($0, 2, index($0, "]") - 2) + 0
			printf "splat +%.1f s: %s\n", t - t0, substr($0, index($0, "]") + 2)
			n++
		}
		index($0, m) { f = 1 }
		END { if (n == 0) print "no splat" }' | tee /tmp/splats
	grep -q '^splat' /tmp/splats && bad=1
done; done
exit $bad
