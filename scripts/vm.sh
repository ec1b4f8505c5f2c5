#!/usr/bin/env bash
# Boot the cached rust_wq test kernel with virtme-ng.
#
# Usage: scripts/vm.sh [options] [--] [COMMAND...]
#
#   COMMAND          run it in the guest (as root, cwd = the repo) and exit
#                    with its exit status; without COMMAND: an interactive shell
#   --kdir DIR       kernel build tree (default: $KDIR or the cached tree)
#   --image FILE     boot this kernel image instead of DIR's bzImage (a distro
#                    vmlinuz: vng finds its modules in the lib/modules/<release>
#                    directory it sits in; needs --busybox)
#   --busybox FILE   a static busybox, for the initramfs vng builds for a
#                    distro kernel
#   --cpus N         guest CPUs (default 4)
#   --memory SIZE    guest memory (default 2G)
#   --timeout S      kill the VM after S seconds (default $RUST_WQ_VM_TIMEOUT
#                    or 600; 0 = no limit; ignored for interactive shells)
#   --qemu-opts STR  extra QEMU options, e.g. "-icount shift=0,sleep=off"
#   --no-edu         leave out QEMU's edu PCI devices (two are added otherwise:
#                    the module's PCI driver binds one and its interrupt
#                    handler queues work, see RUST_WQ_ENQ_F_FROM_DEVICE_IRQ;
#                    it refuses the second with EBUSY)
#   --append STR     extra kernel command-line options, e.g. "slub_debug=FZP"
#                    (repeatable; an empty STR adds nothing)
#   --rwdir DIR      make host DIR writable in the guest (same path)
#   --verbose        show the guest's boot console (debugging boot failures)
#   --console        show the guest console's emergency and alert messages
#                    only (a panic, an oops), so that a VM that dies says why
#                    (make check and make stress); the rest stays in dmesg
#
# The host's root filesystem is visible read-only in the guest at the same
# paths, so host-built binaries and .ko files can be used directly. A COMMAND
# on the project's kernel (no --image) runs with scripts/vm-init.sh as PID 1
# and the root cached (cache=loose): do not change files the guest reads
# during the run. RUST_WQ_VM_INIT=vng boots with vng's own init instead.
#
# Exit status: the guest command's; 124 when the VM timed out; 255 when the
# guest died without reporting an exit status (e.g. a kernel panic).
#
# KVM is used only if a quick probe shows it works (cached per host boot in
# $RUST_WQ_CACHE/kvm-ok); otherwise QEMU's software emulation (TCG).
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kdir="${KDIR:-$KBUILD_DIR_DEFAULT}"
image=""
cpus=4
memory=2G
vm_timeout="${RUST_WQ_VM_TIMEOUT:-600}"
qemu_opts=()
extra=()
edu=1

while [ $# -gt 0 ]; do
	case "$1" in
	--kdir) kdir="$2"; shift 2 ;;
	--image) image="$2"; shift 2 ;;
	--busybox) extra+=(--busybox "$2"); shift 2 ;;
	--cpus) cpus="$2"; shift 2 ;;
	--memory) memory="$2"; shift 2 ;;
	--timeout) vm_timeout="$2"; shift 2 ;;
	--qemu-opts) qemu_opts+=("--qemu-opts=$2"); shift 2 ;;
	--no-edu) edu=0; shift ;;
	--rwdir) extra+=(--rwdir "$2"); shift 2 ;;
	--append) [ -n "$2" ] && extra+=(--append "$2"); shift 2 ;;
	--verbose) extra+=(--verbose); shift ;;
	# (vng's --verbose sets loglevel=7 before the user's options: this one wins.)
	--console) extra+=(--verbose --append loglevel=2); shift ;;
	--) shift; break ;;
	-h | --help) awk 'NR > 1 { if (!/^#/ || /^# shellcheck/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
	-*) die "vm.sh: unknown option $1" ;;
	*) break ;;
	esac
done

if [ -z "$image" ]; then
	image="$kdir/arch/x86/boot/bzImage"
	[ -f "$image" ] ||
		die "no kernel image in $kdir (run 'make setup', or pass KDIR=/path/to/a/built/tree)"
fi
[ -f "$image" ] || die "no kernel image $image"
toolchain_env
command -v vng >/dev/null || die "vng not found (run 'make setup')"

# Does KVM work here?  /dev/kvm may exist while KVM is unusable (QEMU aborts
# with "failed to set MSR" or hangs silently), so actually boot the kernel for
# a few seconds and look for its first console line.
kvm_works() {
	local cache="$RUST_WQ_CACHE/kvm-ok" boot_id line
	boot_id="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
	if [ -n "${RUST_WQ_KVM:-}" ]; then # force: RUST_WQ_KVM=1 or 0
		[ "$RUST_WQ_KVM" = 1 ]
		return
	fi
	if [ -f "$cache" ]; then
		read -r line <"$cache" || true
		case "$line" in
		"yes $boot_id") return 0 ;;
		"no $boot_id") return 1 ;;
		esac
	fi
	local verdict=no out
	if [ -r /dev/kvm ] && [ -w /dev/kvm ] && command -v qemu-system-x86_64 >/dev/null; then
		out="$(timeout -k 2 20 qemu-system-x86_64 -enable-kvm -cpu host -m 256 -smp 1 \
			-nographic -no-reboot -nodefaults -serial stdio \
			-kernel "$image" \
			-append "console=ttyS0 earlyprintk=serial panic=-1 root=/dev/nonexistent" \
			</dev/null 2>&1 | head -c 65536 || true)"
		grep -q 'Linux version' <<<"$out" && verdict=yes
	fi
	mkdir -p "$RUST_WQ_CACHE"
	echo "$verdict $boot_id" >"$cache"
	[ "$verdict" = yes ]
}

# A large log buffer: the tests scan the kernel log after a marker, which must
# not be overwritten by a chatty run.
[ "$image" = "$kdir/arch/x86/boot/bzImage" ] && run="$kdir" || run="$image"
# 9p for the shared directories: vng tries virtiofsd first, which fails here, and waits
# 3 s per directory before it falls back to 9p.
args=(--run "$run" --cpus "$cpus" --memory "$memory" --user root --cwd "$RUST_WQ_ROOT"
	--force-9p --append log_buf_len=4M)
if ! kvm_works; then
	args+=(--disable-kvm)
fi
# QEMU's educational PCI device (vendor 0x1234, device 0x11e8): a real device
# interrupt for the module's PCI driver.  Two of them: the driver binds one
# and refuses the second at probe with EBUSY (second_edu_refused_ebusy checks
# it).  (One word with '=': vng's parser would take "-device edu" after a
# space for its own -d option.)
if [ "$edu" = 1 ]; then
	args+=("--qemu-opts=-device edu" "--qemu-opts=-device edu")
fi
args+=("${extra[@]}" "${qemu_opts[@]}")

if [ $# -eq 0 ]; then
	# Interactive shell: no timeout (the user ends it with 'exit').
	exec vng "${args[@]}"
fi

# One command string for the guest shell; arguments are quoted as given.
if [ $# -eq 1 ]; then
	cmd="$1"
else
	cmd="$(printf '%q ' "$@")"
fi
# The guest does not inherit the host's environment: forward RUST_WQ_*
# variables (test knobs such as RUST_WQ_KO, RUST_WQ_INSMOD_ARGS).
envs=""
while IFS='=' read -r name _; do
	case "$name" in
	RUST_WQ_CACHE | RUST_WQ_VM_TIMEOUT | RUST_WQ_KVM | RUST_WQ_ROOT) ;;
	RUST_WQ_*) envs+="export $name=$(printf '%q' "${!name}"); " ;;
	esac
done < <(env | grep -E '^RUST_WQ_[A-Za-z0-9_]*=' || true)
cmd="$envs$cmd"

# The project's own kernel runs a command faster without vng at run time: vng
# (--dry-run) writes the QEMU command line, which runs with two changes:
#  - init=scripts/vm-init.sh instead of virtme-ng-init (no udev, no tmpfiles:
#    a boot to the command in about half the time);
#  - the root (the host's /, read-only) mounted with cache=loose: the guest
#    keeps what it read in its page cache (under TCG an exec of a program read
#    over 9p without it costs about 1.7 times as much). So the host must not
#    change, during a run, files the guest reads through the root: make check's
#    host steps write only build/clippy-tree, build/compile_fail and cargo's
#    debug target, which no guest reads. Directories given with --rwdir are
#    their own 9p mounts, uncached, as before.
# The exit status is the command's, read from vng's port virtme.ret as vng
# does; 255 when the guest wrote none. RUST_WQ_VM_INIT=vng boots with vng and
# its init instead (as interactive shells and distro kernels always do).
direct_qemu() {
	local ret qemu=()
	ret="$(mktemp "${TMPDIR:-/tmp}/rust_wq_vm_ret.XXXXXX")"
	mapfile -d '' qemu < <(vng "${args[@]}" --dry-run --exec "$cmd" 2>/dev/null | tail -n 1 | python3 -c '
import shlex, sys
init, ret = sys.argv[1:3]
argv = shlex.split(sys.stdin.read())
if not argv or "qemu-system" not in argv[0] or "-append" not in argv:
    sys.exit("vm.sh: vng --dry-run printed no QEMU command")
# What vm-init.sh does not read is left out: x86 keeps 2047 bytes of the command line.
unused = ("virtme_link_mods=", "nr_open=", "virtme_root_user=", "virtme_console=", "raid=", "init=")
params = []
for p in argv[argv.index("-append") + 1].split():
    if p.startswith("rootflags="):
        p += ",cache=loose"
    if not p.startswith(unused) and not (p.startswith("virtme_initmount") and "_" in p.split("=")[0][16:]):
        params.append(p)
params.append("init=" + init)
cmdline = " ".join(params)
if len(cmdline) > 2047:
    sys.exit(f"vm.sh: the kernel command line would be {len(cmdline)} bytes, more than x86 keeps (2047)")
argv[argv.index("-append") + 1] = cmdline
rets = [i for i, a in enumerate(argv) if a.startswith("file,id=ret,")]
if len(rets) != 1:
    sys.exit("vm.sh: unexpected vng --dry-run output (no virtme.ret port)")
argv[rets[0]] = "file,id=ret,path=" + ret
sys.stdout.write("\0".join(argv) + "\0")
' "$RUST_WQ_ROOT/scripts/vm-init.sh" "$ret")
	if [ ${#qemu[@]} -eq 0 ]; then
		rm -f "$ret"
		log "vm.sh: could not get the QEMU command from vng --dry-run"
		rc=1
		return
	fi
	"${tmo[@]}" "${qemu[@]}" </dev/null 2> >(cat >&2) | cat
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ]; then
		read -r rc <"$ret" 2>/dev/null || rc=255
		[[ "$rc" =~ ^[0-9]+$ ]] || rc=255
	fi
	rm -f "$ret"
}

# QEMU reopens /proc/self/fd/1 and 2 (truncating) once per script port, so a
# regular file as stdout/stderr gets clobbered: always hand it pipes.
tmo=()
[ "$vm_timeout" = 0 ] || tmo=(timeout -k 10 "$vm_timeout")
set +e
if [ "$image" = "$kdir/arch/x86/boot/bzImage" ] && [ "${RUST_WQ_VM_INIT:-own}" = own ]; then
	direct_qemu
else
	"${tmo[@]}" vng "${args[@]}" --exec "$cmd" </dev/null 2> >(cat >&2) | cat
	rc=${PIPESTATUS[0]}
fi
set -e
case $rc in
124 | 137) log "the VM timed out after ${vm_timeout} s (RUST_WQ_VM_TIMEOUT / --timeout)"; rc=124 ;;
255) log "the VM exited without a guest exit status (kernel panic or boot failure?); rerun with --verbose to see the console" ;;
esac
exit "$rc"
