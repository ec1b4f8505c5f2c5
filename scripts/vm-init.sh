#!/bin/bash
# PID 1 of a guest that scripts/vm.sh boots to run one command (not an
# interactive shell, not a distro kernel: those keep virtme-ng's own init).
#
# It reads the kernel command line vng wrote for its own init (virtme-ng-init)
# and does only what the project's guests need of it: the kernel filesystems,
# a writable tmpfs layer over each virtme_rw_overlayN directory, the host
# directories shared read-write (virtme_initmountN, 9p), the command
# (virtme.exec, base64) in virtme_chdir with its stdin, stdout and stderr on
# vng's virtio ports, its exit status on the port virtme.ret, then power-off.
# What it leaves out is what cost the time: udev's coldplug and settle (8 s of
# a 16 s boot under TCG) and systemd-tmpfiles (2 s). Nothing here needs udev:
# devtmpfs makes the device nodes (/dev/rust_wq, the virtio ports) with the
# modes their drivers give them.
#
# Every program started here is read over 9p by a debug kernel under TCG
# (about 0.1 s per exec): hence two `mount -a` over generated tables instead
# of a mount per directory.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH HOME=/root TERM=linux

poweroff() {
	# reboot(2) through systemctl's double force (no manager involved), or python3's libc
	# (LINUX_REBOOT_CMD_POWER_OFF); failing both, PID 1 exits: the kernel panics and, with
	# vng's panic=-1 and QEMU's -no-reboot, QEMU ends.
	sync
	systemctl poweroff --force --force 2>/dev/null ||
		python3 -c 'import ctypes; ctypes.CDLL(None, use_errno=True).reboot(0x4321FEDC)'
	exit 1
}
die() {
	echo "vm-init: $*" >&2
	poweroff
}

mount -t proc proc /proc || die "cannot mount /proc"
read -r cmdline </proc/cmdline
# /dev is devtmpfs (CONFIG_DEVTMPFS_MOUNT) and writable: the tables go there.
t1=/dev/.vm-init-fstab1 t2=/dev/.vm-init-fstab2
{
	echo "sysfs /sys sysfs rw,nosuid,nodev,noexec 0 0"
	echo "devpts /dev/pts devpts rw,nosuid,noexec,ptmxmode=0666,X-mount.mkdir 0 0"
	echo "tmpfs /dev/shm tmpfs rw,nosuid,nodev,X-mount.mkdir 0 0"
	echo "run /run tmpfs rw,nosuid,nodev,mode=0755 0 0"
} >"$t1" 2>/dev/null
mount -a -T "$t1" || die "mount -a -T $t1 failed: $(cat "$t1")"
{
	echo "debugfs /sys/kernel/debug debugfs rw 0 0"
	echo "tracefs /sys/kernel/tracing tracefs rw 0 0"
} >"$t2"
dirs=() shared=() chdir=/
for arg in $cmdline; do
	case "$arg" in
	virtme_rw_overlay[0-9]*=/*)
		n=${arg%%=*} d=${arg#*=}
		dirs+=("/run/overlay/$n/u" "/run/overlay/$n/w")
		echo "overlay $d overlay lowerdir=$d,upperdir=/run/overlay/$n/u,workdir=/run/overlay/$n/w 0 0" >>"$t2"
		;;
	virtme_initmount[0-9]*=*)
		n=${arg%%=*}
		# (virtme_initmountN_fstype and _access: 9p and rw, the only kind vm.sh makes)
		[[ "$n" =~ ^virtme_initmount[0-9]+$ ]] || continue
		# after every overlay (a directory under /tmp must not be hidden by /tmp's)
		shared+=("virtme.initmount${n#virtme_initmount} /${arg#*=} 9p version=9p2000.L,trans=virtio,access=any,msize=524288 0 0")
		;;
	virtme_chdir=*) chdir=/${arg#*=} ;;
	virtme_hostname=*) echo "${arg#*=}" >/proc/sys/kernel/hostname ;;
	esac
done
[ ${#shared[@]} -eq 0 ] || printf '%s\n' "${shared[@]}" >>"$t2"
[ ${#dirs[@]} -eq 0 ] || mkdir -p "${dirs[@]}" || die "mkdir failed"
mount -a -T "$t2" || die "mount -a -T $t2 failed: $(cat "$t2")"
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr

declare -A port
for p in /sys/class/virtio-ports/*; do
	read -r name <"$p/name" && port[$name]=/dev/${p##*/}
done
for name in virtme.stdin virtme.stdout virtme.stderr virtme.ret; do
	[ -n "${port[$name]:-}" ] || die "no virtio port $name"
done
case "$cmdline" in
*'virtme.exec=`'*) ;;
*) die "no virtme.exec= on the kernel command line" ;;
esac
script=${cmdline#*virtme.exec=\`}
script=${script%%\`*}
cd "$chdir" || die "cannot cd to $chdir"
script="$(base64 -d <<<"$script")" || die "virtme.exec is not base64"
bash -c "$script" <"${port[virtme.stdin]}" >"${port[virtme.stdout]}" 2>"${port[virtme.stderr]}"
echo $? >"${port[virtme.ret]}"
cd /
poweroff
