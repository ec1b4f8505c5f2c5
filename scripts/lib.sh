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

# Reads result lines ("ok NAME", "not ok NAME", diagnostics) on stdin and prints
# one KTAP report: header, plan, the results numbered 1..N, then the optional
# trailer line $1, then "N passed, N failed".
ktap_report() {
	awk -v trailer="${1:-}" '
	/^(ok|not ok) / { n++; if ($1 == "ok") pass++; else fail++ }
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
		printf "%d passed, %d failed\n", pass, fail
	}'
}
