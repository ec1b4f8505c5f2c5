#!/usr/bin/env bash
# rust_wq for Debian's stock Linux 7.3 kernel (trixie-backports), unmodified:
# the stock packages of one version, the rustc and bindgen that kernel was
# built with, a build tree prepared from its source and its own config, the
# module built against that tree, and the checks that the build matches the
# kernel.  `make check-debian` (scripts/debian-check.py) runs the steps below
# in order, then boots the stock image and runs the end-to-end suite there.
#
# Usage: scripts/debian.sh STEP
#   deps       the project's tools (scripts/setup.sh deps), plus pahole
#              (Debian: dwarves) and a static busybox (busybox-static)
#   fetch      download the stock packages (private apt configuration,
#              signatures checked by apt) and unpack them
#   toolchain  rustc (rustup) and bindgen (cargo install) of the versions the
#              stock config names; pahole >= 1.24
#   prepare    the build tree: the image's config, olddefconfig, the config
#              guard, modules_prepare, the stock Module.symvers
#   build      rust_wq.ko and rust_wq_ctwin.ko in build/debian-<release>/,
#              modpost against the stock Module.symvers, vermagic checked
#   layout     the layout guard: every C struct in the module's debug info
#              has the size the stock kernel's BTF gives it
#   all        deps fetch toolchain prepare build layout
#   install    for the kernel this machine runs (`uname -r`): all, then the
#              module into /lib/modules/<release>/updates/ and depmod
#   kdir | kodir | image | busybox | release   print a path or the release
#
# Environment: DEBIAN_KREL and DEBIAN_VERSION select another stock release
# than the pinned one (both, e.g. DEBIAN_KREL=7.3.5+deb13-amd64
# DEBIAN_VERSION=7.3.5-1~bpo13+1); `install` takes them from the running
# kernel.  BINDGEN and PAHOLE override the tools (a wrong one must make the
# guards fire: that is how they were shown to work).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The stock kernel this target is pinned to (tested together, see README).
DEB_KREL_PINNED=7.3.4+deb13-amd64
DEB_VERSION_PINNED=7.3.4-1~bpo13+1
DEB_SUITE=trixie-backports
DEB_MIRROR=http://deb.debian.org/debian
PAHOLE_MIN=124
CONFIG_ALLOW="$RUST_WQ_ROOT/scripts/debian-config.allow"

step="${1:-all}"
if [ "$step" = install ]; then
	KREL="$(uname -r)"
	# Debian's kernels say their package version in `uname -v`:
	# "#1 SMP PREEMPT_DYNAMIC Debian 7.3.4-1~bpo13+1 (2026-11-30)".
	VERSION="$(uname -v | sed -n 's/.* Debian \([^ ]*\) .*/\1/p')"
	[ -n "$VERSION" ] || die "the running kernel ($KREL, '$(uname -v)') is not a Debian kernel: no 'Debian <version>' in uname -v"
else
	KREL="${DEBIAN_KREL:-$DEB_KREL_PINNED}"
	VERSION="${DEBIAN_VERSION:-$DEB_VERSION_PINNED}"
fi
case "$KREL" in
7.3.*-amd64) ;;
*) die "$KREL is not a Debian 7.3 amd64 kernel release (supported: $DEB_KREL_PINNED, package version $DEB_VERSION_PINNED, from $DEB_SUITE)" ;;
esac
KABI="${KREL%-amd64}" # 7.3.4+deb13: the ABI name of the common packages

D="$RUST_WQ_CACHE/debian-$KREL"
ROOTFS="$D/root" # the binary packages, unpacked
SRC="$D/src"     # linux-source-7.3, unpacked
B="$D/build"     # the prepared build tree (O=)
MODDIR="$ROOTFS/usr/lib/modules/$KREL"
HEADERS="$ROOTFS/usr/src/linux-headers-$KREL"
IMAGE="$MODDIR/vmlinuz"
STOCK_CONFIG="$MODDIR/config"
KODIR="$RUST_WQ_ROOT/build/debian-$KREL"
PACKAGES=("linux-image-$KREL" "linux-binary-$KREL" "linux-modules-$KREL" "linux-base-$KREL"
	"linux-headers-$KREL" "linux-headers-$KABI-common" "linux-kbuild-$KABI")

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
timed() { # timed WHAT CMD...: runs CMD, logs how long it took
	local t0=$SECONDS what="$1"
	shift
	"$@"
	log "$what: $((SECONDS - t0)) s"
}

# --- deps --------------------------------------------------------------------

step_deps() {
	bash "$RUST_WQ_ROOT/scripts/setup.sh" deps
	local missing=() p
	for p in dwarves busybox-static; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing Debian packages: ${missing[*]}"
	sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install failed for: ${missing[*]}"
}

# --- fetch -------------------------------------------------------------------

# The stock packages of one version, downloaded with a private apt
# configuration under $D/apt (the machine's sources are not touched; apt
# checks the archive's signature with the keyring already on the machine and
# every package's hash against the signed index), then unpacked.
step_fetch() {
	if [ "$(cat "$ROOTFS/.extracted" 2>/dev/null)" = "$VERSION" ] &&
		[ "$(cat "$SRC/.extracted" 2>/dev/null)" = "$VERSION" ]; then
		return 0
	fi
	local a="$D/apt" p pkgs=() debs deb
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$D/deb"
	echo "deb $DEB_MIRROR $DEB_SUITE main" >"$a/sources.list"
	local opts=(-o "Dir::Etc::sourcelist=$a/sources.list" -o Dir::Etc::sourceparts=/dev/null
		-o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache" -o APT::Sandbox::User=root)
	log "downloading Debian's $KREL packages, version $VERSION ($DEB_SUITE)"
	apt-get "${opts[@]}" -qq update >/dev/null 2>&1 || die "apt-get update of the private sources ($DEB_SUITE) failed"
	for p in "${PACKAGES[@]}" linux-source-"$KVER_SERIES"; do
		debs=("$D"/deb/"$p"_"${VERSION/:/%3a}"_*.deb)
		[ -f "${debs[0]}" ] || pkgs+=("$p=$VERSION")
	done
	if [ ${#pkgs[@]} -gt 0 ] && ! (cd "$D/deb" && apt-get "${opts[@]}" -qq download "${pkgs[@]}" >/dev/null 2>"$D/apt/download.err"); then
		sed 's/^/  /' "$D/apt/download.err" >&2
		die "could not download ${pkgs[*]} from $DEB_SUITE: Debian keeps only the newest version of a suite; see 'apt-cache policy linux-image-$KREL' and update DEB_VERSION_PINNED/DEB_KREL_PINNED in scripts/debian.sh (every guard then checks the new one)"
	fi
	log "unpacking the packages into $ROOTFS"
	rm -rf "$ROOTFS"
	mkdir -p "$ROOTFS"
	for p in "${PACKAGES[@]}"; do
		debs=("$D"/deb/"$p"_"${VERSION/:/%3a}"_*.deb)
		dpkg-deb -x "${debs[0]}" "$ROOTFS"
	done
	for p in "$IMAGE" "$STOCK_CONFIG" "$HEADERS/Module.symvers" "$HEADERS/vmlinux"; do
		[ -f "$p" ] || die "the packages lack $p"
	done
	echo "$VERSION" >"$ROOTFS/.extracted"
	debs=("$D"/deb/linux-source-"$KVER_SERIES"_"${VERSION/:/%3a}"_*.deb)
	deb="${debs[0]}"
	log "unpacking $(basename "$deb") into $SRC"
	rm -rf "$SRC" "$D/x"
	mkdir -p "$SRC" "$D/x"
	dpkg-deb -x "$deb" "$D/x"
	tar -xJf "$D/x/usr/src/linux-source-$KVER_SERIES.tar.xz" -C "$SRC" --strip-components=1
	rm -rf "$D/x"
	echo "$VERSION" >"$SRC/.extracted"
}

# --- toolchain -----------------------------------------------------------------

stock() { sed -n "s/^CONFIG_$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$STOCK_CONFIG"; }

# What the stock config says it was built with; sets RUSTC_TEXT (the rustc
# version text without "rustc "), RUST_TOOLCHAIN, BINDGEN_VERSION_STOCK,
# BINDGEN, PAHOLE.
toolchain_vars() {
	[ -f "$STOCK_CONFIG" ] || die "no $STOCK_CONFIG (run: scripts/debian.sh fetch)"
	[ "$(stock RUST)" = y ] || die "the stock kernel $KREL is built without CONFIG_RUST: no Rust module can load into it"
	RUSTC_TEXT="$(stock RUSTC_VERSION_TEXT)"
	RUSTC_TEXT="${RUSTC_TEXT#rustc }"
	RUST_TOOLCHAIN="${RUSTC_TEXT%% *}"
	BINDGEN_VERSION_STOCK="$(stock BINDGEN_VERSION_TEXT)"
	BINDGEN_VERSION_STOCK="${BINDGEN_VERSION_STOCK#bindgen }"
	if [ -z "$RUST_TOOLCHAIN" ] || [ -z "$BINDGEN_VERSION_STOCK" ]; then
		die "the stock config names no rustc or bindgen version (CONFIG_RUSTC_VERSION_TEXT, CONFIG_BINDGEN_VERSION_TEXT)"
	fi
	BINDGEN="${BINDGEN:-$RUST_WQ_CACHE/bindgen-$BINDGEN_VERSION_STOCK/bin/bindgen}"
	PAHOLE="${PAHOLE-$(command -v pahole || true)}"
}

# The environment of every kernel make: the stock rustc (rustup proxy with
# RUSTUP_TOOLCHAIN) and, while rust/ is built, the stock rustc's version text
# (RUSTC_FORCE_RUSTC_VERSION: the crates' symbol hashes depend on it).
debian_env() {
	toolchain_env
	toolchain_vars
	export RUSTUP_TOOLCHAIN="$RUST_TOOLCHAIN"
	export RUSTC_FORCE_RUSTC_VERSION="$RUSTC_TEXT"
}

kmake() { make -C "$SRC" O="$B" KERNELRELEASE="$KREL" BINDGEN="$BINDGEN" PAHOLE="$PAHOLE" "$@"; }

pahole_version() { "$1" --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\.\([0-9]*\).*/\1\2/p'; }

step_toolchain() {
	toolchain_env
	toolchain_vars
	local sysroot have llvm
	if ! have="$(rustup run "$RUST_TOOLCHAIN" rustc --version 2>/dev/null)" ||
		! sysroot="$(rustup run "$RUST_TOOLCHAIN" rustc --print sysroot)" ||
		[ ! -d "$sysroot/lib/rustlib/src/rust/library/core" ]; then
		log "installing rustc $RUST_TOOLCHAIN (rustup; the stock kernel's compiler)"
		rustup toolchain install "$RUST_TOOLCHAIN" --profile minimal -c rust-src -c rustfmt >/dev/null 2>&1 ||
			die "rustup toolchain install $RUST_TOOLCHAIN failed"
		have="$(rustup run "$RUST_TOOLCHAIN" rustc --version)"
	fi
	# "rustc 1.85.1 (4eb161250 2025-03-15)" must begin the stock text (Debian
	# adds "(built from a source tarball)"), and the LLVM must be the same.
	[[ "rustc $RUSTC_TEXT" == "$have"* ]] ||
		die "rustup's $RUST_TOOLCHAIN says '$have', the stock kernel was built with 'rustc $RUSTC_TEXT'"
	llvm="$(rustup run "$RUST_TOOLCHAIN" rustc -vV | sed -n 's/^LLVM version: \([0-9]*\)\.\([0-9]*\)\.\([0-9]*\)$/\1 \2 \3/p')"
	# shellcheck disable=SC2086
	llvm="$(printf '%d%02d%02d' $llvm)"
	[ "$llvm" = "$(stock RUSTC_LLVM_VERSION)" ] ||
		die "rustc $RUST_TOOLCHAIN uses LLVM $llvm, the stock kernel's rustc LLVM $(stock RUSTC_LLVM_VERSION)"
	if ! "$BINDGEN" --version 2>/dev/null | grep -qx "bindgen $BINDGEN_VERSION_STOCK"; then
		[ "$BINDGEN" = "$RUST_WQ_CACHE/bindgen-$BINDGEN_VERSION_STOCK/bin/bindgen" ] ||
			log "warning: BINDGEN=$BINDGEN is not bindgen $BINDGEN_VERSION_STOCK (the stock kernel's); the guards will tell"
		if [ ! -x "$RUST_WQ_CACHE/bindgen-$BINDGEN_VERSION_STOCK/bin/bindgen" ]; then
			log "building bindgen-cli $BINDGEN_VERSION_STOCK, the stock kernel's (about 3 minutes)"
			cargo install --quiet --locked --root "$RUST_WQ_CACHE/bindgen-$BINDGEN_VERSION_STOCK" \
				bindgen-cli --version "$BINDGEN_VERSION_STOCK" || die "cargo install bindgen-cli $BINDGEN_VERSION_STOCK failed"
		fi
	fi
	[ -x "${PAHOLE:-/nonexistent}" ] ||
		die "pahole not found: without it Kconfig drops DEBUG_INFO_BTF and SCHED_CLASS_EXT, and struct task_struct changes (Debian: apt-get install dwarves)"
	[ "$(pahole_version "$PAHOLE")" -ge $PAHOLE_MIN ] ||
		die "$PAHOLE is $("$PAHOLE" --version), >= 1.$((PAHOLE_MIN - 100)) is needed"
	busybox_path >/dev/null
}

busybox_path() { # a static busybox for vng's initramfs
	local b
	b="$(command -v busybox || true)"
	if [ -z "$b" ] || ldd "$b" >/dev/null 2>&1; then
		die "no static busybox on PATH (Debian: apt-get install busybox-static): vng needs it to boot a distro kernel"
	fi
	echo "$b"
}

# --- prepare ---------------------------------------------------------------------

# Everything the prepared tree depends on; a different one prepares it anew.
fingerprint() {
	printf '%s\n' "$KREL $VERSION" "$(rustup run "$RUST_TOOLCHAIN" rustc --version)" \
		"RUSTC_FORCE_RUSTC_VERSION=$RUSTC_TEXT" "$("$BINDGEN" --version 2>&1)" \
		"pahole $("$PAHOLE" --version 2>&1)" "LIBCLANG_PATH=${LIBCLANG_PATH:-}" "$(gcc --version | head -n1)" \
		"$(sha256sum "$STOCK_CONFIG" "$CONFIG_ALLOW" | cut -c1-64)"
}

step_prepare() {
	debian_env
	local fp
	fp="$(fingerprint)"
	[ "$(cat "$B/.rust_wq-prepared" 2>/dev/null)" = "$fp" ] && [ -f "$B/Module.symvers" ] && return 0
	mkdir -p "$D"
	exec 9>"$B.lock"
	flock 9
	[ "$(cat "$B/.rust_wq-prepared" 2>/dev/null)" = "$fp" ] && [ -f "$B/Module.symvers" ] && return 0
	rm -rf "$B"
	mkdir -p "$B"
	log "preparing the build tree $B (rustc $RUST_TOOLCHAIN, $("$BINDGEN" --version 2>&1), pahole $([ -n "$PAHOLE" ] && "$PAHOLE" --version || echo missing))"
	cp "$STOCK_CONFIG" "$B/.config"
	kmake -s olddefconfig >"$B/olddefconfig.log" 2>&1 || { cat "$B/olddefconfig.log" >&2; die "olddefconfig failed"; }
	guard_config
	log "modules_prepare (about 1-2 minutes on 2 cores, longer under load; log: $B/prepare.log)"
	local t0=$SECONDS
	kmake -j"$(nproc)" modules_prepare >"$B/prepare.log" 2>&1 ||
		{ tail -n 30 "$B/prepare.log" >&2; die "modules_prepare failed, see $B/prepare.log"; }
	log "modules_prepare: $((SECONDS - t0)) s"
	cp "$HEADERS/Module.symvers" "$B/Module.symvers"
	guard_exports
	echo "$fp" >"$B/.rust_wq-prepared"
}

# Config guard: the prepared .config may differ from the stock one only in the
# options scripts/debian-config.allow names (compiler versions and
# compiler-capability probes).  "is not set" and absent are the same (unset).
guard_config() {
	local diff bad
	diff="$(awk '
		function val(line) { sub(/^[^=]*=/, "", line); return line }
		FNR == 1 { f++ }
		/^CONFIG_[A-Za-z0-9_]+=/ { n = $0; sub(/=.*/, "", n); sub(/^CONFIG_/, "", n); v[f, n] = val($0); names[n] = 1 }
		END { for (n in names) { a = ((1, n) in v) ? v[1, n] : "(unset)"; b = ((2, n) in v) ? v[2, n] : "(unset)"
			if (a != b) print n " stock=" a " here=" b } }' "$STOCK_CONFIG" "$B/.config" | sort)"
	printf '%s\n' "$diff" >"$B/config-diff.txt"
	bad="$(printf '%s\n' "$diff" | awk 'NR == FNR { if ($0 !~ /^[ \t]*(#|$)/) allow[++k] = $1; next }
		$0 == "" { next }
		{ for (i = 1; i <= k; i++) if ($1 ~ "^(" allow[i] ")$") next; print }' "$CONFIG_ALLOW" -)"
	if [ -n "$bad" ]; then
		sed 's/^/[rust_wq]   CONFIG_/' <<<"$bad" >&2
		die "guard (config): the prepared .config differs from the stock one in the options above, which $(basename "$CONFIG_ALLOW") does not allow (all differences: $B/config-diff.txt)"
	fi
	log "guard (config): the prepared config differs from the stock one in $(grep -c . "$B/config-diff.txt") allowed compiler options only ($B/config-diff.txt)"
}

# Export guard: every Rust symbol the tree's crates export has the stock
# kernel's name (a different bindgen or RUSTC_FORCE_RUSTC_VERSION renames
# them, and a module then fails modpost on some).
guard_exports() {
	local missing
	missing="$(cat "$B"/rust/exports_*_generated.h | sed -n 's/^EXPORT_SYMBOL_RUST_GPL(\(.*\));$/\1/p' |
		sort -u | comm -23 - <(awk '{ print $2 }' "$B/Module.symvers" | sort -u))"
	if [ -n "$missing" ]; then
		head -n 5 <<<"$missing" | sed 's/^/[rust_wq]   /' >&2
		die "guard (exports): $(grep -c . <<<"$missing") Rust exports of the prepared tree are not in the stock Module.symvers (first above): a wrong bindgen or rustc"
	fi
	log "guard (exports): all $(cat "$B"/rust/exports_*_generated.h | grep -c '^EXPORT_SYMBOL_RUST_GPL') Rust exports of the prepared tree are in the stock Module.symvers"
}

# --- build -----------------------------------------------------------------------

step_build() {
	debian_env
	[ -f "$B/.rust_wq-prepared" ] || die "no prepared tree $B (run: scripts/debian.sh prepare)"
	cmp -s "$HEADERS/Module.symvers" "$B/Module.symvers" ||
		die "$B/Module.symvers is not the stock one: modpost would not check against the stock kernel"
	# A copy of the sources (kbuild's M= writes its outputs beside them; the
	# clone's own build for the debug kernel stays as it is).
	local f rc=0 warn got want stock_ko
	# Built from nothing every time (about 5 s): an object kept from a build
	# against another tree can look newer than the headers of this one (it
	# happened: a .mod.o with another task_struct, caught by the layout
	# guard); the warning count below is then this build's; and a failed
	# build leaves no older .ko for `layout` or `install`.
	rm -rf "${KODIR:?}"
	mkdir -p "$KODIR"
	(cd "$RUST_WQ_ROOT" && find src bench include -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' \) -print0 |
		xargs -0 cp --parents -p -t "$KODIR")
	cp -p "$RUST_WQ_ROOT/Kbuild" "$RUST_WQ_ROOT/rust_wq_main.rs" "$KODIR/"
	log "building rust_wq.ko and rust_wq_ctwin.ko for $KREL in $KODIR (rustc $RUST_TOOLCHAIN)"
	make -C "$B" M="$KODIR" modules >"$KODIR/build.log" 2>&1 || rc=$?
	# The Rust exports' names do not depend on this variable for the module
	# itself; it is kept set anyway, as for rust/.
	if grep -q 'undefined!' "$KODIR/build.log"; then
		grep 'undefined!' "$KODIR/build.log" | sed 's/^/[rust_wq]   /' >&2
		die "guard (symbols): modpost against the stock Module.symvers: the symbols above are not exported by the stock kernel"
	fi
	if [ $rc -ne 0 ]; then
		tail -n 40 "$KODIR/build.log" >&2
		die "the module build failed, see $KODIR/build.log"
	fi
	# rustc's "warning: ..." (not its "warning: N warnings emitted" summary)
	# and gcc's "file:line:col: warning: ...".
	warn="$(grep -E '^warning|: warning:' "$KODIR/build.log" | grep -cvE '^warning: [0-9]+ warnings? emitted' || true)"
	log "guard (symbols): modpost resolved every symbol of rust_wq.ko and rust_wq_ctwin.ko against the stock Module.symvers ($(grep -c . "$B/Module.symvers") symbols); build warnings: $warn (see $KODIR/build.log)"
	stock_ko="$(find "$MODDIR/kernel" -name '*.ko*' -print -quit)"
	want="$(modinfo -F vermagic "$stock_ko")"
	for f in rust_wq.ko rust_wq_ctwin.ko; do
		got="$(modinfo -F vermagic "$KODIR/$f")"
		[ "$got" = "$want" ] || die "guard (vermagic): $f has '$got', the stock modules '$want'"
	done
	log "guard (vermagic): '$want', as the stock modules"
}

# --- layout -------------------------------------------------------------------------

# Layout guard: every named C struct that the module's debug info (rustc's
# DWARF of the bindgen types, gcc's of the C twin) and the stock kernel's BTF
# (the headers' BTF-only vmlinux) both describe has the same size in both.
step_layout() {
	toolchain_vars
	local mod stock common bad f t=$'\t'
	# "name<TAB>size<TAB>holes" a struct; the stock BTF is read by a pahole that
	# may not know every BTF kind of a newer kernel (it says so on stderr):
	# the sizes are in the struct records themselves.
	stock="$("$PAHOLE" -F btf --sizes "$HEADERS/vmlinux" 2>/dev/null | cut -f1,2 | LC_ALL=C sort -u)"
	[ -n "$stock" ] || die "pahole read no struct from the stock BTF ($HEADERS/vmlinux)"
	for f in rust_wq.ko rust_wq_ctwin.ko; do
		[ -f "$KODIR/$f" ] || die "no $KODIR/$f (run: scripts/debian.sh build)"
		mod="$("$PAHOLE" -F dwarf --sizes "$KODIR/$f" 2>/dev/null | cut -f1,2 | LC_ALL=C sort -u)"
		[ -n "$mod" ] || die "pahole read no struct from the debug info of $f"
		common="$(LC_ALL=C join -t "$t" <(echo "$mod") <(echo "$stock"))"
		bad="$(awk -F "$t" '$2 != $3' <<<"$common")"
		if [ -n "$bad" ]; then
			awk -F "$t" '{ print "[rust_wq]   struct " $1 ": " $2 " bytes in the module, " $3 " in the stock kernel" }' <<<"$bad" >&2
			die "guard (layout): $f sees C structs with other sizes than the stock kernel has"
		fi
		log "guard (layout): $f: $(grep -c . <<<"$common") C structs in both its debug info and the stock BTF, all of equal size (task_struct: $(awk -F "$t" '$1 == "task_struct" { print $2 }' <<<"$common") bytes)"
	done
}

# --- install ------------------------------------------------------------------------

step_install() {
	local dst="/lib/modules/$KREL/updates"
	[ -f "/lib/modules/$KREL/modules.dep" ] || die "/lib/modules/$KREL is missing: is $KREL installed here?"
	cmp -s "/lib/modules/$KREL/config" "$STOCK_CONFIG" 2>/dev/null || [ ! -f "/lib/modules/$KREL/config" ] ||
		die "the installed $KREL's config differs from the stock package $VERSION's"
	log "installing rust_wq.ko into $dst"
	sudo_ install -D -m 0644 "$KODIR/rust_wq.ko" "$dst/rust_wq.ko"
	sudo_ depmod "$KREL"
	log "done: 'sudo modprobe rust_wq' loads it ($(modinfo -F vermagic "$KODIR/rust_wq.ko"))"
}

case "$step" in
deps) step_deps ;;
fetch) timed fetch step_fetch ;;
toolchain) timed toolchain step_toolchain ;;
prepare) timed prepare step_prepare ;;
build) timed build step_build ;;
layout) step_layout ;;
all) step_deps; step_fetch; step_toolchain; step_prepare; step_build; step_layout ;;
install) step_deps; step_fetch; step_toolchain; step_prepare; step_build; step_layout; step_install ;;
kdir) echo "$B" ;;
kodir) echo "$KODIR" ;;
image) echo "$IMAGE" ;;
busybox) busybox_path ;;
release) echo "$KREL $VERSION" ;;
*) die "usage: $0 deps|fetch|toolchain|prepare|build|layout|all|install|kdir|kodir|image|busybox|release" ;;
esac
