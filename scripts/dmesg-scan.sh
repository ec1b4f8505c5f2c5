#!/usr/bin/env bash
# Scan kernel log text for splats: warnings, BUGs, oopses, lockdep reports,
# debugobjects, kmemleak reports, RCU stalls, workqueue complaints.
#
# Usage: scripts/dmesg-scan.sh [FILE]        (default: stdin)
#        scripts/dmesg-scan.sh --list-allow  (print the active allow-list)
#
# Feed it only what came after the test marker (scripts/guest.sh): boot noise
# (ACPI warnings, the kernel's own Rust KUnit tests using the deprecated
# system_wq) must not be blamed on the module.  Prints every offending line
# (timestamps stripped); exit status 1 when there is one, 0 when the log is
# clean, 2 when the scan cannot be trusted (an allow-list entry is not a valid
# extended regex, or the input cannot be read): it fails closed.
#
# Known-harmless lines can be allowed with extended regexes, one a line, in
# tests/dmesg-allow.txt (# starts a comment) or in RUST_WQ_DMESG_ALLOW (one
# regex).  An allow-list is a hole in the scan: the report lists every entry,
# every line it let through is printed on stderr as "allowed: LINE" (the guest
# then reports the scan as a SKIP, not a pass), and an entry that matches the
# empty string or a generic splat line ('.', 'x*', 'WARNING') is refused
# (status 2) as too broad.
#
# What the patterns can see depends on the kernel: the SLUB lines ("BUG
# kmalloc-64 ...: Redzone overwritten", "Poison overwritten", "Object already
# free") need slub_debug on the kernel command line (scripts/lib.sh
# vm_kernel_args); *_ONCE warnings ("deprecated workqueue" is a pr_warn_once)
# fire once per boot unless reset (debugfs clear_warn_once, done by
# scripts/guest.sh at the marker).  lockdep reports once and switches itself
# off: the guest checks debug_locks and the taint mask as well.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

patterns=(
	'WARNING:' 'BUG:' '^BUG ' 'kernel BUG' 'Oops' 'general protection' 'Kernel panic' 'Call Trace'
	'possible circular locking' 'possible recursive locking' 'lockdep' 'DEBUG_LOCKS_WARN_ON'
	'INFO: '                   # lockdep, hung tasks, RCU stalls
	'ODEBUG' 'unreferenced object' 'UBSAN' 'KFENCE' 'refcount_t:' 'list_(add|del) corruption'
	'Object already free' 'Poison overwritten' 'Redzone' # SLUB: "BUG kmalloc-64 (...): Poison overwritten"
	'rcu: .*stall' 'self-detected stall' 'scheduling while atomic'
	'sleeping function called from invalid context' 'deprecated workqueue' 'hogged CPU'
	'consider switching to WQ_UNBOUND' 'workqueue lockup' 'stack-protector' 'stack guard page' 'segfault at'
	"isn't complete after [0-9]+ tries" # drain_workqueue() that does not end (pr_warn)
	'kmemleak: .*disabled' 'Cannot allocate a kmemleak_object' # the leak check switched itself off
)
re="$(IFS='|'; echo "${patterns[*]}")"

allow=()
if [ -f "$root/tests/dmesg-allow.txt" ]; then
	while IFS= read -r l; do
		case "$l" in '' | '#'*) ;; *) allow+=("$l") ;; esac
	done <"$root/tests/dmesg-allow.txt"
fi
[ -z "${RUST_WQ_DMESG_ALLOW:-}" ] || allow+=("$RUST_WQ_DMESG_ALLOW")
# An invalid regex must not silently allow (or hide) anything; nor may an
# entry so broad that it matches the empty line or a generic splat.
canaries=('' 'WARNING: CPU: 1 PID: 2 at kernel/workqueue.c:3 rust_wq_canary+0x4/0x5'
	'BUG: KFENCE: use-after-free read in rust_wq_canary+0x4/0x5' 'unreferenced object 0xffff8880 (size 64):')
for a in "${allow[@]}"; do
	rc=0
	grep -E -- "$a" </dev/null >/dev/null 2>&1 || rc=$?
	[ $rc -le 1 ] || { echo "dmesg-scan: invalid allow-list regex: $a" >&2; exit 2; }
	for c in "${canaries[@]}"; do
		! grep -qE -- "$a" <<<"$c" ||
			{ echo "dmesg-scan: allow-list regex too broad (it matches '$c'): $a" >&2; exit 2; }
	done
done
if [ "${1:-}" = --list-allow ]; then
	[ ${#allow[@]} -eq 0 ] || printf '%s\n' "${allow[@]}"
	exit 0
fi

# Strip the printk timestamp "[   12.345678] " (and a dmesg -x/-r level prefix).
text="$(sed -E 's/^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ?//' "${1:-/dev/stdin}")" ||
	{ echo "dmesg-scan: cannot read ${1:-stdin}" >&2; exit 2; }
rc=0
hits="$(grep -E -- "$re" <<<"$text")" || rc=$?
[ $rc -le 1 ] || { echo "dmesg-scan: grep failed" >&2; exit 2; }
if [ -n "$hits" ] && [ ${#allow[@]} -gt 0 ]; then
	rc=0
	kept="$(grep -v -E -- "$(IFS='|'; echo "${allow[*]}")" <<<"$hits")" || rc=$?
	[ $rc -le 1 ] || { echo "dmesg-scan: allow-list grep failed" >&2; exit 2; }
	grep -E -- "$(IFS='|'; echo "${allow[*]}")" <<<"$hits" | sed 's/^/allowed: /' >&2 || true
	hits="$kept"
fi
[ -z "$hits" ] || { printf '%s\n' "$hits"; exit 1; }
