# shellcheck shell=bash disable=SC2034
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
RUFF_VERSION=0.17.5

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
		for native in "$VENV_DIR"/lib/python3*/site-packages/clang/native; do
			[ -d "$native" ] && export LIBCLANG_PATH="$native" && break
		done
	fi
	return 0
}

# The debug features the kernel tree KDIR ($1) is configured with, as the
# space-separated words the guest understands in RUST_WQ_REQUIRE: a test that
# needs one of them fails (instead of skipping) when it is missing at run time.
#   debugfs kmemleak failslab hotplug lockdep slub_debug tracing userfaultfd
# (KUnit needs no word: no KUnit output after insmod is always a failure.)
# Fails (status 1) when KDIR has no .config: the harness must not run with
# every requirement silently dropped.
required_features() {
	local cfg="$1/.config" f=()
	[ -f "$cfg" ] || { echo "no $cfg: cannot tell the kernel's debug features" >&2; return 1; }
	on() { grep -q "^CONFIG_$1=y" "$cfg"; }
	on DEBUG_FS && f+=(debugfs)
	on DEBUG_KMEMLEAK && ! on DEBUG_KMEMLEAK_DEFAULT_OFF && f+=(kmemleak)
	on FAILSLAB && on FAULT_INJECTION_DEBUG_FS && f+=(failslab)
	on HOTPLUG_CPU && f+=(hotplug)
	on PROVE_LOCKING && f+=(lockdep)
	on SLUB_DEBUG && f+=(slub_debug)
	on EVENT_TRACING && f+=(tracing)
	on USERFAULTFD && f+=(userfaultfd)
	echo "${f[*]}"
}

# Kernel command-line options of the test VM for a tree configured as KDIR
# ($1): slub_debug (red zones, poisoning, sanity checks) when the kernel
# has CONFIG_SLUB_DEBUG, so that the log scan's SLUB patterns can fire.
vm_kernel_args() {
	[ -f "$1/.config" ] || { echo "no $1/.config: cannot tell the kernel's options" >&2; return 1; }
	if grep -q '^CONFIG_SLUB_DEBUG=y' "$1/.config"; then
		echo "slub_debug=FZP"
	fi
}
