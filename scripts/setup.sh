#!/usr/bin/env bash
# Install what rust_wq needs on a Debian 12 machine with rustup Rust, then
# build (and cache) the Rust-enabled Linux 7.3 test kernel.
#
# Idempotent: every step checks whether its result is already there and is
# silent when it is.
# Usage: scripts/setup.sh [deps|kernel|all|bench-kernel|bench-kdir|arm64|arm64-kdir]   (default all)
#   bench-kernel  the release-config kernel for `make bench` (never built by
#                 `all`, so `make check` does not pay for it): the same base
#                 config without debug options, scripts/kernel-release.config,
#                 in ~/.cache/rust_wq/build-7.3-release-<hash of that file>
#   bench-kdir    print that directory
#   arm64         what `make check-arm64` builds against (never built by `all`): Debian's
#                 aarch64 cross gcc, and a minimal arm64 configuration
#                 (allnoconfig + scripts/kernel-arm64.config) of which only
#                 `modules_prepare` is built, in ~/.cache/rust_wq/build-7.3-arm64-<hash>
#   arm64-kdir    print that directory
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

what="${1:-all}"
KBUILD_DIR="${KBUILD_DIR:-$KBUILD_DIR_DEFAULT}"
KERNEL_LABEL="test kernel"
KERNEL_MINUTES=10
RELEASE_FRAGMENT="$RUST_WQ_ROOT/scripts/kernel-release.config"
RELEASE_KBUILD_DIR="$RUST_WQ_CACHE/build-$KVER_SERIES-release-$(sha256sum "$RELEASE_FRAGMENT" | cut -c1-12)"
ARM64_FRAGMENT="$RUST_WQ_ROOT/scripts/kernel-arm64.config"
ARM64_KBUILD_DIR="$RUST_WQ_CACHE/build-$KVER_SERIES-arm64-$(sha256sum "$ARM64_FRAGMENT" | cut -c1-12)"

APT_PACKAGES=(flex bison bc libelf-dev libssl-dev cpio kmod xz-utils
	qemu-system-x86 udev python3-venv gcc gcc-multilib make shellcheck)

# Only for the arm64 build check (`scripts/setup.sh arm64`).
APT_PACKAGES_ARM64=(gcc-aarch64-linux-gnu)

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs the Debian packages named as arguments (default: APT_PACKAGES) that are missing.
step_apt() {
	local missing=() p want=("$@")
	[ ${#want[@]} -gt 0 ] || want=("${APT_PACKAGES[@]}")
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing Debian packages: ${missing[*]}"
	sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
		die "apt-get update failed (Debian mirror unreachable?)"
	sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install failed for: ${missing[*]}"
}

step_rust_src() {
	local sysroot
	sysroot="$(rustc --print sysroot)" || die "rustc not found: install Rust with rustup"
	[ -d "$sysroot/lib/rustlib/src/rust/library/core" ] && return 0
	log "installing rustup component rust-src"
	rustup component add rust-src >/dev/null || die "rustup component add rust-src failed"
}

step_bindgen() {
	if [ -x "$TOOLS_DIR/bin/bindgen" ] &&
		"$TOOLS_DIR/bin/bindgen" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
		return 0
	fi
	log "building bindgen-cli $BINDGEN_VERSION (about 3 minutes)"
	cargo install --quiet --locked --root "$TOOLS_DIR" bindgen-cli --version "$BINDGEN_VERSION" ||
		die "cargo install bindgen-cli failed (crates.io unreachable?)"
}

step_venv() {
	local pins="$VENV_DIR/.pins-$VIRTME_NG_VERSION-$LIBCLANG_VERSION-$RUFF_VERSION"
	[ -x "$VENV_DIR/bin/vng" ] && [ -f "$pins" ] && return 0
	log "installing virtme-ng $VIRTME_NG_VERSION, libclang $LIBCLANG_VERSION and ruff $RUFF_VERSION (PyPI) into $VENV_DIR"
	python3 -m venv "$VENV_DIR" || die "python3 -m venv failed"
	"$VENV_DIR/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VIRTME_NG_VERSION" \
		"libclang==$LIBCLANG_VERSION" "ruff==$RUFF_VERSION" || die "pip install failed (PyPI unreachable?)"
	touch "$pins"
}

# Downloads Debian's linux-source-7.3 without touching the machine's apt
# configuration: a private sources list, state and cache under $APT_DIR.
# apt checks the archive signatures with the keyring already on the machine.
step_source() {
	[ -f "$SRC_DIR/.extracted" ] && return 0
	log "downloading Debian's linux-source-$KVER_SERIES"
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/deb"
	cat >"$APT_DIR/sources.list" <<-EOF
		deb http://deb.debian.org/debian trixie-backports main
		deb http://deb.debian.org/debian forky main
		deb http://deb.debian.org/debian sid main
	EOF
	local opts=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o Dir::Etc::sourceparts=/dev/null
		-o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache" -o APT::Sandbox::User=root)
	apt-get "${opts[@]}" -qq update >/dev/null 2>&1 || die "apt-get update of the private sources failed"
	(cd "$APT_DIR/deb" && rm -f linux-source-*.deb &&
		apt-get "${opts[@]}" -qq download "linux-source-$KVER_SERIES" >/dev/null 2>&1) ||
		die "could not download linux-source-$KVER_SERIES from Debian"
	local debs deb
	debs=("$APT_DIR"/deb/linux-source-"$KVER_SERIES"_*.deb)
	deb="${debs[0]}"
	log "extracting $(basename "$deb")"
	rm -rf "$SRC_DIR" "$APT_DIR/x"
	mkdir -p "$APT_DIR/x" "$SRC_DIR"
	dpkg-deb -x "$deb" "$APT_DIR/x"
	tar -xJf "$APT_DIR/x/usr/src/linux-source-$KVER_SERIES.tar.xz" -C "$SRC_DIR" --strip-components=1
	rm -rf "$APT_DIR/x"
	touch "$SRC_DIR/.extracted"
}

step_kernel() {
	toolchain_env
	if [ -f "$KBUILD_DIR/.rust_wq-built" ] && [ -f "$KBUILD_DIR/arch/x86/boot/bzImage" ]; then
		return 0
	fi
	mkdir -p "$KBUILD_DIR"
	# One build of a tree at a time (two make runs in one tree break each other): wait for
	# another set-up building it, then see whether it finished.
	exec 9>"$KBUILD_DIR.lock"
	flock 9
	if [ -f "$KBUILD_DIR/.rust_wq-built" ] && [ -f "$KBUILD_DIR/arch/x86/boot/bzImage" ]; then
		return 0
	fi
	if [ ! -f "$KBUILD_DIR/.rust_wq-configured" ]; then
		log "configuring the $KERNEL_LABEL in $KBUILD_DIR"
		(cd "$SRC_DIR" && make -s O="$KBUILD_DIR" rustavailable >/dev/null) ||
			die "the kernel says Rust is not available (see: make -C $SRC_DIR rustavailable)"
		# virtme-ng's minimal config plus our fragment ($FRAGMENT).
		rm -f "$KBUILD_DIR/.config"
		(cd "$SRC_DIR" && virtme-configkernel --allnoconfig --custom "$FRAGMENT" \
			--arch x86_64 O="$KBUILD_DIR" >"$KBUILD_DIR/configkernel.log" 2>&1) ||
			die "virtme-configkernel failed, see $KBUILD_DIR/configkernel.log"
		check_config
		touch "$KBUILD_DIR/.rust_wq-configured"
	fi
	log "building the $KERNEL_LABEL in $KBUILD_DIR (about $KERNEL_MINUTES minutes on 2 cores, log: $KBUILD_DIR/build.log)"
	local start=$SECONDS pid rc=0 next=60
	make -C "$KBUILD_DIR" -j"$(nproc)" >"$KBUILD_DIR/build.log" 2>&1 &
	pid=$!
	# A progress line a minute: elapsed time, build steps so far, the current one.
	while kill -0 "$pid" 2>/dev/null; do
		sleep 2
		if [ $((SECONDS - start)) -ge $next ] && kill -0 "$pid" 2>/dev/null; then
			log "  $KERNEL_LABEL: $((SECONDS - start)) s, $(grep -c '^  [A-Z]' "$KBUILD_DIR/build.log") build steps, now $(tail -n 1 "$KBUILD_DIR/build.log" | awk '{ print $NF }')"
			next=$((next + 60))
		fi
	done
	wait "$pid" || rc=$?
	if [ $rc -ne 0 ]; then
		tail -n 30 "$KBUILD_DIR/build.log" >&2
		die "kernel build failed, see $KBUILD_DIR/build.log"
	fi
	touch "$KBUILD_DIR/.rust_wq-built"
	log "$KERNEL_LABEL built in $((SECONDS - start)) s"
}

# The arm64 tree: configured from allnoconfig with the fragment forced
# (KCONFIG_ALLCONFIG), then only `modules_prepare` (the Rust crates, the
# generated bindings and modpost): enough to compile and link an external
# module, nothing to boot. Without vmlinux, modpost cannot check the module's
# undefined symbols (it says so); compiling and linking are what is checked.
step_arm64() {
	toolchain_env
	local k=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
	[ -f "$ARM64_KBUILD_DIR/.rust_wq-prepared" ] && return 0
	mkdir -p "$ARM64_KBUILD_DIR"
	exec 9>"$ARM64_KBUILD_DIR.lock"
	flock 9
	[ -f "$ARM64_KBUILD_DIR/.rust_wq-prepared" ] && return 0
	log "configuring the arm64 tree in $ARM64_KBUILD_DIR"
	(cd "$SRC_DIR" && make -s "${k[@]}" O="$ARM64_KBUILD_DIR" rustavailable >/dev/null) ||
		die "the kernel says Rust is not available for arm64"
	rm -f "$ARM64_KBUILD_DIR/.config"
	(cd "$SRC_DIR" && make -s "${k[@]}" O="$ARM64_KBUILD_DIR" KCONFIG_ALLCONFIG="$ARM64_FRAGMENT" \
		allnoconfig >"$ARM64_KBUILD_DIR/config.log" 2>&1) ||
		die "arm64 allnoconfig failed, see $ARM64_KBUILD_DIR/config.log"
	FRAGMENT="$ARM64_FRAGMENT" KBUILD_DIR="$ARM64_KBUILD_DIR" check_config
	log "building modules_prepare for arm64 (rust/, modpost; log: $ARM64_KBUILD_DIR/build.log)"
	local start=$SECONDS
	make -C "$ARM64_KBUILD_DIR" "${k[@]}" -j"$(nproc)" modules_prepare >"$ARM64_KBUILD_DIR/build.log" 2>&1 || {
		tail -n 30 "$ARM64_KBUILD_DIR/build.log" >&2
		die "arm64 modules_prepare failed, see $ARM64_KBUILD_DIR/build.log"
	}
	touch "$ARM64_KBUILD_DIR/.rust_wq-prepared"
	log "arm64 tree prepared in $((SECONDS - start)) s"
}

# Every option the fragment asks for must have survived Kconfig; a silently
# dropped option (unmet dependency) would make the tests meaningless.
check_config() {
	local line opt want got bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) opt="${line%%=*}"; want="${line#*=}" ;;
		"# CONFIG_"*" is not set") opt="${line#\# }"; opt="${opt%% *}"; want=n ;;
		*) continue ;;
		esac
		got="$(grep -E "^$opt=|^# $opt is not set" "$KBUILD_DIR/.config" | head -n1 || true)"
		case "$got" in
		"$opt=$want") ;;
		"# $opt is not set") [ "$want" = n ] || { log "config: $opt=$want was dropped"; bad=1; } ;;
		"") [ "$want" = n ] || { log "config: $opt missing"; bad=1; } ;;
		*) log "config: wanted $opt=$want, got $got"; bad=1 ;;
		esac
	done <"$FRAGMENT"
	[ $bad -eq 0 ] || die "kernel config does not match $(basename "$FRAGMENT")"
}

case "$what" in
deps) step_apt; step_rust_src; step_bindgen; step_venv ;;
source) step_source ;;
kernel) step_source; step_kernel ;;
bench-kernel)
	step_apt; step_rust_src; step_bindgen; step_venv; step_source
	FRAGMENT="$RELEASE_FRAGMENT" KBUILD_DIR="$RELEASE_KBUILD_DIR"
	KERNEL_LABEL="release-config kernel for make bench" KERNEL_MINUTES=6
	step_kernel ;;
bench-kdir) echo "$RELEASE_KBUILD_DIR" ;;
arm64)
	step_apt; step_apt "${APT_PACKAGES_ARM64[@]}"
	step_rust_src; step_bindgen; step_venv; step_source; step_arm64 ;;
arm64-kdir) echo "$ARM64_KBUILD_DIR" ;;
all) step_apt; step_rust_src; step_bindgen; step_venv; step_source; step_kernel ;;
*) die "usage: $0 [deps|source|kernel|all|bench-kernel|bench-kdir|arm64|arm64-kdir]" ;;
esac
