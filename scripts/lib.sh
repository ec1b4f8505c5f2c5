# Shared settings for rust_wq's scripts.  Source this file; do not run it.
#
# Everything the scripts install or build lives under $RUST_WQ_CACHE (outside
# the git clone, so that a fresh clone on the same machine reuses it).

set -euo pipefail

RUST_WQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUST_WQ_CACHE="${RUST_WQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust_wq}"

# Pinned versions (verified together, see README "What the set-up installs").
KVER_SERIES=7.3
BINDGEN_VERSION=0.73.2
LIBCLANG_VERSION=18.1.1
VIRTME_NG_VERSION=1.42

TOOLS_DIR="$RUST_WQ_CACHE/tools"
VENV_DIR="$RUST_WQ_CACHE/venv"
APT_DIR="$RUST_WQ_CACHE/apt"
SRC_DIR="$RUST_WQ_CACHE/linux-src"
FRAGMENT="$RUST_WQ_ROOT/scripts/kernel.config"

# The build tree is keyed by kernel series and fragment hash: editing the
# fragment selects a fresh tree and rebuilds it.
fragment_hash() { sha256sum "$FRAGMENT" | cut -c1-12; }
KBUILD_DIR_DEFAULT="$RUST_WQ_CACHE/build-$KVER_SERIES-$(fragment_hash)"

log() { printf '[rust_wq] %s\n' "$*" >&2; }
die() { printf '[rust_wq] error: %s\n' "$*" >&2; exit 1; }

# Environment needed by the kernel's Rust build.
toolchain_env() {
	export PATH="$TOOLS_DIR/bin:$VENV_DIR/bin:$HOME/.cargo/bin:$PATH"
	if [ -d "$VENV_DIR" ]; then
		local native
		native="$(ls -d "$VENV_DIR"/lib/python3*/site-packages/clang/native 2>/dev/null | head -n1 || true)"
		[ -n "$native" ] && export LIBCLANG_PATH="$native"
	fi
	return 0
}

# Reads result lines ("ok NAME [# directive]", "not ok NAME", diagnostics) on
# stdin and prints one KTAP report: header, plan, the results numbered 1..N,
# then the optional trailer line $1, then "N passed, N failed, N skipped".
# A result is skipped when its directive is SKIP; a skip is never a pass.
ktap_report() {
	awk -v trailer="${1:-}" '
	/^(ok|not ok) / {
		n++
		if ($1 != "ok") fail++
		else if ($0 ~ / # (SKIP|skip)([ :]|$)/) skip++
		else pass++
	}
	{ line[NR] = $0 }
	END {
		print "KTAP version 1"
		print "1.." n
		k = 0
		for (i = 1; i <= NR; i++) {
			l = line[i]
			if (l ~ /^ok /) { k++; sub(/^ok /, "", l); print "ok " k " " l }
			else if (l ~ /^not ok /) { k++; sub(/^not ok /, "", l); print "not ok " k " " l }
			else print l
		}
		if (trailer != "") print trailer
		printf "%d passed, %d failed, %d skipped\n", pass, fail, skip
	}'
}

# The debug features the kernel tree KDIR ($1) is configured with, as the
# space-separated words the guest understands in RUST_WQ_REQUIRE: a test that
# needs one of them fails (instead of skipping) when it is missing at run time.
#   debugfs kmemleak failslab hotplug lockdep slub_debug kunit tracing
required_features() {
	local cfg="$1/.config" f=()
	[ -f "$cfg" ] || return 0
	on() { grep -q "^CONFIG_$1=y" "$cfg"; }
	on DEBUG_FS && f+=(debugfs)
	on DEBUG_KMEMLEAK && ! on DEBUG_KMEMLEAK_DEFAULT_OFF && f+=(kmemleak)
	on FAILSLAB && on FAULT_INJECTION_DEBUG_FS && f+=(failslab)
	on HOTPLUG_CPU && f+=(hotplug)
	on PROVE_LOCKING && f+=(lockdep)
	on SLUB_DEBUG && f+=(slub_debug)
	on KUNIT && f+=(kunit)
	on EVENT_TRACING && f+=(tracing)
	echo "${f[*]}"
}

# Kernel command-line options of the test VM for a tree configured as KDIR
# ($1): slub_debug (red zones, poisoning, sanity checks) when the kernel
# has CONFIG_SLUB_DEBUG, so that the log scan's SLUB patterns can fire.
vm_kernel_args() {
	if grep -q '^CONFIG_SLUB_DEBUG=y' "$1/.config" 2>/dev/null; then
		echo "slub_debug=FZP"
	fi
}

# Turns the guest's output (stdin; scripts/guest.sh's protocol) into result
# lines for ktap_report:
#   RWQ-RESULT ok|not ok NAME [# directive]  a result
#   RWQ-DIAG text                            a diagnostic of the last result
#   RWQ-STAGE NAME N                         stage NAME ended, it printed N results
#   RWQ-DONE N                               the guest ended, N results in all
# Any other RWQ- line, a malformed result, a stage whose count differs from
# what arrived, a stage of $1 (space-separated names) that never reported,
# or a missing or wrong done count is a failure: no result can vanish.
# At most 60 diagnostic lines are kept per result.
guest_report() { # guest_report "STAGE..." <LOG
	awk -v stages="${1:-}" '
	function res(l) { print l; nd = 0; total++; instage++ }
	function bad(name, why) { print "not ok " name " # " why; nd = 0 }
	/^RWQ-RESULT / {
		l = substr($0, 12)
		if (l !~ /^(ok|not ok) [^ #]+( # .*)?$/) {
			bad("guest_protocol", "malformed result line"); print "# " $0; total++; instage++; next
		}
		res(l); next
	}
	/^RWQ-DIAG/ { l = $0; sub(/^RWQ-DIAG ?/, "", l); if (++nd <= 60) print "# " l; next }
	/^RWQ-STAGE / {
		if (NF != 3 || $3 !~ /^[0-9]+$/) { bad("guest_protocol", "malformed stage line"); print "# " $0; next }
		seen[$2] = 1
		if ($3 + 0 != instage) bad($2 ".results_arrived", "the guest printed " $3 " results for this stage, " instage " arrived")
		instage = 0; next
	}
	/^RWQ-DONE/ {
		if (NF != 2 || $2 !~ /^[0-9]+$/) { bad("guest_protocol", "malformed done line"); print "# " $0; next }
		done = 1
		if ($2 + 0 != total) bad("guest_protocol.results_arrived", "the guest printed " $2 " results, " total " arrived")
		next
	}
	/^RWQ-/ { bad("guest_protocol", "unknown line from the guest"); print "# " $0; next }
	END {
		if (instage > 0 && done) bad("guest_protocol", instage " results after the last stage line")
		n = split(stages, want, " ")
		for (i = 1; i <= n; i++)
			if (!(want[i] in seen)) bad(want[i], "the guest never reported this stage")
	}'
}
