#!/usr/bin/env bash
# Scan kernel log text for splats: warnings, BUGs, oopses, lockdep reports,
# debugobjects, kmemleak reports, RCU stalls, workqueue complaints.
#
# Usage: scripts/dmesg-scan.sh [FILE]      (default: stdin)
#
# Feed it only what came after the test marker: boot-time noise (ACPI
# warnings, the kernel's own Rust KUnit tests using the deprecated system_wq)
# must not be blamed on the module.
#
# Prints every offending line (timestamps stripped) and exits 1 when there is
# any, 0 when the log is clean.
#
# Known-harmless lines can be allowed with extended regexes, one a line, in
# tests/dmesg-allow.txt (lines starting with # are comments) or in the
# RUST_WQ_DMESG_ALLOW environment variable (one regex).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

patterns=(
	'WARNING:'
	'BUG:'
	'^BUG '                        # SLUB: "BUG kmalloc-64 (Tainted: ...): Poison overwritten"
	'kernel BUG'
	'Oops'
	'general protection'
	'Kernel panic'
	'Call Trace'
	'possible circular locking'
	'possible recursive locking'
	'lockdep'
	'DEBUG_LOCKS_WARN_ON'
	'INFO: '                       # lockdep, hung tasks, RCU stalls
	'ODEBUG'
	'unreferenced object'          # kmemleak report printed to the log
	'UBSAN'
	'KFENCE'
	'refcount_t:'
	'list_(add|del) corruption'
	'Object already free'
	'Poison overwritten'
	'Redzone'
	'rcu: .*stall'
	'self-detected stall'
	'scheduling while atomic'
	'sleeping function called from invalid context'
	'deprecated workqueue'
	'hogged CPU'
	'consider switching to WQ_UNBOUND'
	'workqueue lockup'
	'stack-protector'
	'stack guard page'
	'segfault at'
)
re="$(IFS='|'; echo "${patterns[*]}")"

allow=()
if [ -f "$root/tests/dmesg-allow.txt" ]; then
	while IFS= read -r l; do
		case "$l" in '' | '#'*) continue ;; esac
		allow+=("$l")
	done <"$root/tests/dmesg-allow.txt"
fi
[ -n "${RUST_WQ_DMESG_ALLOW:-}" ] && allow+=("$RUST_WQ_DMESG_ALLOW")

# Strip the printk timestamp "[   12.345678] " (and a dmesg -x/-r level prefix).
text="$(sed -E 's/^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ?//' "${1:-/dev/stdin}")"
hits="$(grep -E -- "$re" <<<"$text" || true)"
if [ -n "$hits" ] && [ ${#allow[@]} -gt 0 ]; then
	hits="$(grep -v -E -- "$(IFS='|'; echo "${allow[*]}")" <<<"$hits" || true)"
fi
if [ -n "$hits" ]; then
	printf '%s\n' "$hits"
	exit 1
fi
exit 0
