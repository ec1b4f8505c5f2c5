#!/usr/bin/env bash
# What runs inside the test VM (as root), started by scripts/harness.py through
# scripts/vm.sh.  The host's filesystem is visible read-only at the same paths;
# OUT (a host directory) is writable.
#
# Usage: scripts/guest.sh check|stress|run|bench|scan REPO [OUT]
#        scripts/guest.sh binary REPO OUT LIMIT CMD...
#
#   check   part 1 of make check: arm the log scan, insmod (the module's KUnit
#           suite runs then), lane 1 of rust_wq_e2e, short
#           stress scenarios, rmmod, reload cycles, wait until every timer the
#           run could have armed has expired, then kmemleak, the kernel log,
#           the taint mask, lockdep (see mode_check).
#   check2  part 2 of make check, booted at the same time as part 1 with a
#           never-online CPU: lane 2 of rust_wq_e2e, the other short stress
#           scenarios, the torture seeds, build/abi_check, the same checks at
#           the end.
#   check-all  both parts in one boot, without the never-online CPU (make
#           check-debian).
#   stress  insmod, the long stress scenarios and torture runs, then as check
#           (make stress).
#   run     insmod, the wqctl session scripts/demo.session, the kernel log
#           since the marker, rmmod, the log scan (make run; exit 0 = good).
#   bench   every operation of the workqueue layer timed beside its C twin,
#           and lib/test_workqueue.c (make bench; see mode_bench below).
#   scan    scripts/dmesg-scan.sh on stdin (the host's self-tests use it).
#   mutants the mutants of OUT/list, one after the other (make mutants; see
#           mode_mutants and scripts/mutants.py).
#   binary  CMD run for at most LIMIT s and nested as a test binary is; the
#           stage document on stdout (the host's self-tests use it).
#
# Results: every stage writes OUT/STAGE.ktap, a KTAP document (the test
# binaries' and KUnit's own KTAP nested in it as subtests), then OUT/done
# lists the stages written.  The host checks every document (plans at every
# level) and that no stage is missing, so no result can vanish on the way.
#
# Environment (all optional): RUST_WQ_KO (module, default REPO/rust_wq.ko),
# RUST_WQ_INSMOD_ARGS, RUST_WQ_TEST_TIMEOUT (seconds per test binary run),
# RUST_WQ_STRESS_SEED, RUST_WQ_STRESS_SCENARIOS (stress: a subset),
# RUST_WQ_STRESS_MODE (stress: long or short), RUST_WQ_TORTURE_SEEDS and
# RUST_WQ_TORTURE_SECS (the torture runs), RUST_WQ_REQUIRE (debug
# features the kernel is configured with: missing, they fail, not skip).
set -uo pipefail
export PATH="/usr/sbin:/sbin:/usr/bin:/bin:$PATH"

mode="${1:?usage: guest.sh check|check2|check-all|stress|mutants|binary|run|bench|scan REPO [OUT]}"
repo="${2:?repo}"
out="${3:-/tmp/rust_wq-results}"
[ "$mode" = scan ] && exec bash "$repo/scripts/dmesg-scan.sh"
mkdir -p "$out"
ko="${RUST_WQ_KO:-$repo/rust_wq.ko}"
export RUST_WQ_KO="$ko"
modname="$(basename "$ko" .ko | tr - _)"
bin="$repo/wqctl/target/release"
kml=/sys/kernel/debug/kmemleak
# "Since the module load" = after this line in the kernel log; unique per run.
marker="rust_wq-test-marker $(date +%s%N)"
info() { printf '[guest] %s\n' "$*"; }

# --- KTAP: one document per stage -----------------------------------------
stage_begin() { stage="$1" nres=0; : >"$out/$stage.body"; }
result() { # result ok|"not ok" NAME [DIRECTIVE]
	nres=$((nres + 1))
	printf '%s %d %s%s\n' "$1" "$nres" "$2" "${3:+ # $3}" >>"$out/$stage.body"
	info "$1 $2${3:+ # $3}"
}
diag() { # the lines of "$*" (or of stdin) as diagnostics of the last result, at most 80
	if [ $# -gt 0 ]; then printf '%s\n' "$*"; else cat; fi | head -n 80 | untimed |
		sed 's/^/# /' >>"$out/$stage.body"
}
stage_end() { # written in one go: a partial document cannot arrive
	{ printf 'KTAP version 1\n1..%d\n' "$nres"; cat "$out/$stage.body"; } >"$out/$stage.tmp"
	mv "$out/$stage.tmp" "$out/$stage.ktap"
	rm -f "$out/$stage.body"
	echo "$stage" >>"$out/done"
}
# subtest NAME FILE [EXTRA-FAILURE]: FILE (a KTAP document) nested as subtest NAME.
# A FILE without its own "KTAP version" header and plan (a binary that printed
# nothing, or died before its plan) is a failure, never an empty pass.
subtest() {
	local why="${3:-}"
	nres=$((nres + 1))
	awk -v n="$1" '{ print "    " $0 } !h && /^KTAP version/ { print "    # Subtest: " n; h = 1 }' \
		"$2" >>"$out/$stage.body"
	if ! grep -q '^KTAP version' "$2" || ! grep -Eq '^1\.\.[0-9]+' "$2"; then
		why="${why:+$why; }no KTAP header and plan in its output"
	fi
	if [ -z "$why" ] && ! grep -Eq '^not ok ' "$2"; then
		printf 'ok %d %s\n' "$nres" "$1" >>"$out/$stage.body"
	else
		printf 'not ok %d %s%s\n' "$nres" "$1" "${why:+ # $why}" >>"$out/$stage.body"
	fi
}

# KUnit ran the module's suites during insmod: its KTAP document as the
# kernel printed it (timestamps stripped), nested as subtest rust_wq.
kunit_suites() {
	log_since | untimed |
		awk '/^KTAP version/ { f = 1 } f { print } f && /^1\.\./ { n = substr($0, 4) + 0 }
			f && /^(not )?ok / && ++k == n { exit }' >"$out/kunit.out"
	if [ -s "$out/kunit.out" ]; then
		subtest rust_wq "$out/kunit.out"
	elif [ ! -d /sys/module/kunit ]; then
		not_available rust_wq kunit "the kernel has no KUnit (CONFIG_KUNIT): the module's suites are compiled out"
	else
		result "not ok" rust_wq "no KUnit KTAP in the kernel log after insmod"
	fi
}

# Is debug feature $1 required (the kernel is configured with it)?
required() { [[ " ${RUST_WQ_REQUIRE:-} " == *" $1 "* ]]; }
# not_available NAME FEATURE WHY: cannot be checked here; fails if required.
not_available() {
	if required "$2"; then
		result "not ok" "$1" "$3, but the kernel is configured with $2 (RUST_WQ_REQUIRE)"
	else
		result ok "$1" "SKIP $3"
	fi
}

# The one marker convention: the kernel log "since" a marker line is what
# follows it (the line itself left out); $1 defaults to this run's marker.
log_since() { dmesg | awk -v m="${1:-$marker}" 'f; index($0, m) { f = 1 }'; }
untimed() { sed -E 's/^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ?//'; } # printk timestamps stripped
debug_locks() { awk '$1 == "debug_locks:" { print $2 }' /proc/lockdep_stats 2>/dev/null; }
tainted() { cat /proc/sys/kernel/tainted 2>/dev/null || echo unknown; }

# The one way to bound a step: run "$@" for at most LIMIT seconds (by the
# guest clock), output in $run_out; status 124 when it had to be killed.
# `timeout` is not used: a process stuck in the kernel cannot be killed and
# `timeout` would wait for it forever.  On a timeout $run_out.hang gets the
# kernel stacks of its threads; if SIGKILL does not end it, those of every
# blocked task too, and `stuck` is set.
stuck=""
task_stack() { echo "task ${1##*/} ($(cat "$1/comm")) $(grep '^State' "$1/status")"; cat "$1/stack"; } 2>/dev/null
run_limited() { # run_limited LIMIT CMD...
	local limit=$1 pid timer ended="" rc=0 d
	shift
	run_out="$out/run.out"
	rm -f "$run_out.hang"
	"$@" >"$run_out" 2>&1 &
	pid=$!
	# One sleep as the timer, not a poll: under TCG every program started costs about 0.1 s
	# of a vCPU, and the command ends when it ends, not at the next whole second.
	sleep "$limit" &
	timer=$!
	wait -n -p ended "$pid" "$timer" || rc=$?
	if [ "$ended" = "$pid" ]; then
		kill "$timer" 2>/dev/null
		wait "$timer" 2>/dev/null
		return $rc
	fi
	for d in /proc/"$pid"/task/*; do task_stack "$d"; done >"$run_out.hang"
	kill -9 "$pid" 2>/dev/null
	sleep 2
	if kill -0 "$pid" 2>/dev/null; then
		stuck="$pid"
		echo "still there after SIGKILL; blocked (D state) tasks:"
		for d in /proc/[0-9]*; do grep -q '^State:.*D' "$d/status" 2>/dev/null && task_stack "$d"; done
		echo w 2>/dev/null >/proc/sysrq-trigger
	fi >>"$run_out.hang"
	return 124
}

# run_binary NAME LIMIT BINARY ARGS...: one KTAP-printing test binary, nested.
run_binary() {
	local name="$1" limit="$2" rc=0 why=""
	shift 2
	if [ ! -x "$1" ]; then
		result "not ok" "$name" "binary $1 missing (make user)"
		return
	fi
	info "running $*"
	run_limited "$limit" "$@" || rc=$?
	sed 's/^/[guest]   /' "$run_out"
	if [ $rc -eq 124 ]; then
		why="timed out after $limit s (kernel stacks below)"
	elif [ $rc -ne 0 ] && ! grep -Eq '^not ok ' "$run_out"; then
		why="exit status $rc"
	fi
	subtest "$name" "$run_out" "$why"
	[ -f "$run_out.hang" ] && diag <"$run_out.hang"
}

# Arms the log scan and writes the marker; the setup results go to stage
# log_scan, which is ended last.
prepare() {
	local debugfs_ok=0 v allow
	mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	mountpoint -q /sys/kernel/debug && debugfs_ok=1
	# Report, then forget, what boot leaked: only leaks after the marker count.
	[ -w "$kml" ] && { echo scan >"$kml"; echo clear >"$kml"; } 2>/dev/null
	taint0="$(tainted)" locks0="$(debug_locks)"
	stage_begin log_scan
	if [ $debugfs_ok = 1 ]; then result ok setup.debugfs; else
		not_available setup.debugfs debugfs "debugfs is not mounted at /sys/kernel/debug"; fi
	# *_ONCE warnings ("deprecated workqueue" is one) that fired before the
	# marker would stay silent after it: reset them.
	if echo 1 2>/dev/null >/sys/kernel/debug/clear_warn_once; then result ok setup.clear_warn_once; else
		not_available setup.clear_warn_once debugfs "cannot write /sys/kernel/debug/clear_warn_once: *_ONCE warnings printed before the marker would stay silent"; fi
	if [ "$locks0" = 1 ]; then
		result ok setup.lockdep_on
	elif [ -z "$locks0" ]; then
		not_available setup.lockdep_on lockdep "no /proc/lockdep_stats (lockdep not built in)"
	else
		result "not ok" setup.lockdep_on "debug_locks is $locks0 before the module is loaded: lockdep switched itself off (an earlier report?) and would see nothing"
		dmesg | grep -iE 'lockdep|debug_locks|turning off the locking' | tail -n 5 | diag
	fi
	v="$(cat /sys/kernel/slab/kmalloc-64/{sanity_checks,red_zone,poison} 2>/dev/null | tr -d '\n')"
	if [ "$v" = 111 ]; then result ok setup.slub_debug; else
		not_available setup.slub_debug slub_debug "slub_debug is not active (kmalloc-64 sanity_checks/red_zone/poison: '$v'; boot with slub_debug=FZP)"; fi
	if [ -w "$kml" ]; then result ok setup.kmemleak; else
		not_available setup.kmemleak kmemleak "$kml is not available"; fi
	if [ "$taint0" = unknown ]; then
		result "not ok" setup.taint "cannot read /proc/sys/kernel/tainted"
	else
		result ok setup.taint
		diag "taint mask before the module is loaded: $taint0"
	fi
	if ! allow="$(bash "$repo/scripts/dmesg-scan.sh" --list-allow 2>&1)"; then
		result "not ok" setup.dmesg_allow_list "the allow-list of scripts/dmesg-scan.sh is invalid"
		diag "$allow"
	else
		result ok setup.dmesg_allow_list
		[ -z "$allow" ] || sed 's/^/active allow-list entry: /' <<<"$allow" | diag
	fi
	cp "$out/log_scan.body" "$out/log_scan.setup"
	setup_results=$nres
	echo "$marker" >/dev/kmsg
}

do_insmod() { # prints why it failed
	[ -f "$ko" ] || { echo "module $ko not found (make module)"; return 1; }
	# shellcheck disable=SC2086
	insmod "$ko" ${RUST_WQ_INSMOD_ARGS:-} 2>&1
}

do_rmmod() { # prints why it failed
	local left
	[ -d "/sys/module/$modname" ] ||
		{ echo "module $modname is not loaded before rmmod (rust_wq_e2e must leave it loaded)"; return 1; }
	rmmod "$modname" 2>&1 || return 1
	[ ! -d "/sys/module/$modname" ] || { echo "/sys/module/$modname still exists after rmmod"; return 1; }
	# The module's WQ_SYSFS queue must be gone with it (a leaked reference
	# would keep it, and the next insmod would fail).
	left="$(cd /sys/bus/workqueue/devices && echo "$modname"*)"
	[ "$left" != "$modname*" ] || left=""
	[ -z "$left" ] || { echo "rmmod succeeded but the module's workqueues are still registered: $left" \
		"(/sys/bus/workqueue/devices; a leaked reference kept them alive)"; return 1; }
}

# kmemleak reports an object once it is 5 s old and a scan found it
# unreferenced; prepare() reported and cleared everything from before.
check_kmemleak() {
	local leaks
	if [ ! -w "$kml" ]; then
		not_available kmemleak_clean kmemleak "kmemleak not available"
	elif ! echo scan 2>/dev/null >"$kml"; then
		# Disabled on the way: any "clean" verdict would be empty.
		result "not ok" kmemleak_clean "kmemleak refused a scan (disabled?)"
		dmesg | grep -i kmemleak | tail -n 5 | diag
	elif ! { sleep 5 && echo scan >"$kml" && sleep 1 && echo scan >"$kml"; } 2>/dev/null; then
		# (a third scan makes a stale reference less likely)
		result "not ok" kmemleak_clean "kmemleak refused a later scan (disabled during the wait?)"
		dmesg | grep -i kmemleak | tail -n 5 | diag
	elif ! leaks="$(cat "$kml" 2>&1)"; then
		result "not ok" kmemleak_clean "cannot read $kml"
		diag "$leaks"
	else
		if [ -z "$leaks" ]; then result ok kmemleak_clean; else
			result "not ok" kmemleak_clean
			diag "$leaks"
		fi
	fi
}

# The log scan, the taint mask, lockdep: appended to the setup results.
check_kernel_log() {
	local hits rc=0 t1 new allowed=$(((1 << 12) | (1 << 13) | (1 << 18))) l1
	stage_begin log_scan
	cp "$out/log_scan.setup" "$out/log_scan.body"
	nres=$setup_results
	# The whole kernel log since the module's load, kept beside the results: the scan reports
	# only the lines it matched, and an oops needs its trace to be diagnosed afterwards.
	log_since >"$out/dmesg.txt" || true
	if ! dmesg | grep -F "$marker" >/dev/null; then
		result "not ok" dmesg_clean "the marker is no longer in the kernel log (ring buffer overflow?)"
	elif hits="$(log_since | bash "$repo/scripts/dmesg-scan.sh" 2>&1)"; then
		if [ -z "$hits" ]; then result ok dmesg_clean; else
			# Lines the allow-list let through: not checked, so not a pass.
			result ok dmesg_clean "SKIP $(grep -c '^allowed: ' <<<"$hits") kernel-log line(s) let through by the allow-list"
			diag "$hits"
		fi
	else
		rc=$?
		result "not ok" dmesg_clean "$([ $rc -eq 1 ] || echo "scripts/dmesg-scan.sh failed with status $rc")"
		diag "$hits"
	fi
	# New taint bits other than O (out-of-tree, 12), E (unsigned, 13) and
	# N (KUnit ran, 18) fail: W (a warning), D (an oops), B, L, ...
	t1="$(tainted)"
	if [ "$t1" = unknown ] || [ "$taint0" = unknown ]; then
		result "not ok" taint_clean "cannot read /proc/sys/kernel/tainted"
	elif new=$((t1 & ~taint0 & ~allowed)) && [ $new -eq 0 ]; then
		result ok taint_clean
		diag "taint mask $taint0 before the module, $t1 at the end"
	else
		result "not ok" taint_clean "the kernel got new taint flags during the run: mask $taint0 -> $t1 (new, unexpected bits: $new; see Documentation/admin-guide/tainted-kernels.rst)"
	fi
	# lockdep switches itself off after its first report: then the log scan
	# cannot vouch for the locking of anything after that point.
	l1="$(debug_locks)"
	if [ -z "$l1" ]; then
		not_available lockdep_still_on lockdep "no /proc/lockdep_stats (lockdep not built in)"
	elif [ "$l1" = 1 ]; then
		result ok lockdep_still_on
	else
		result "not ok" lockdep_still_on "debug_locks is $l1 at the end of the run: lockdep switched itself off (after a report, or another debug facility turned it off)"
		log_since | grep -iE 'lockdep|debug_locks|turning off' | head -n 10 | diag
	fi
	stage_end
}

# Delayed work armed by the run fires at the latest at the horizon (with the
# module gone: an oops); the leak and log checks wait for it.
timer_horizon=0
armed_until() { # armed_until SECONDS
	local t=$(($(date +%s) + $1))
	[ $t -le $timer_horizon ] || timer_horizon=$t
}
wait_timer_horizon() {
	local left=$((timer_horizon - $(date +%s) + 1))
	[ $left -le 0 ] || { info "waiting $left s until every timer the run could have armed has expired"; sleep $left; }
}

# The torture test (src/torture.rs, debugfs rust_wq/torture): one run per
# seed in this boot (RUST_WQ_TORTURE_SEEDS, default three random ones), each
# nested as a subtest (its KTAP: a result per invariant, the seed and the
# operation counts per context as diagnostics), then the kernel log since it
# started through scripts/dmesg-scan.sh.
torture_runs() { # torture_runs SECONDS
	local secs=$1 seed seeds f=/sys/kernel/debug/rust_wq/torture m rc hits name
	read -ra seeds <<<"${RUST_WQ_TORTURE_SEEDS:-$(od -An -N12 -tu4 /dev/urandom)}"
	for seed in "${seeds[@]}"; do
		name="rust_wq_torture seed=$seed ${secs}s"
		if [ ! -w "$f" ]; then
			result "not ok" "$name" "$f is missing (debugfs not mounted, or the module not loaded)"
			continue
		fi
		# Each seed's own *_ONCE warnings: re-armed (an earlier seed's would
		# otherwise keep them silent and its dmesg_clean would pass blind).
		echo 1 2>/dev/null >/sys/kernel/debug/clear_warn_once
		m="rust_wq-torture-marker $seed $(date +%s%N)"
		echo "$m" >/dev/kmsg
		info "torture: seed $seed for $secs s"
		rc=0
		run_limited $((secs + 120)) sh -c "echo '$seed $secs' >$f" || rc=$?
		if [ $rc -eq 0 ]; then
			cat /sys/kernel/debug/rust_wq/torture_result >"$out/torture.ktap"
			sed 's/^/[guest]   /' "$out/torture.ktap"
			subtest "$name" "$out/torture.ktap"
		else
			result "not ok" "$name" "$([ $rc -eq 124 ] && echo "timed out after $((secs + 120)) s" || echo "the write failed (status $rc)")"
			diag <"$run_out"
			[ -f "$run_out.hang" ] && diag <"$run_out.hang"
		fi
		if hits="$(log_since "$m" | bash "$repo/scripts/dmesg-scan.sh" 2>&1)"; then
			result ok "$name dmesg_clean"
		else
			result "not ok" "$name dmesg_clean"
			diag "$hits"
		fi
	done
}

# stress (make stress): the module loaded, the long stress scenarios, the torture seeds, unload,
# reload cycles, leaks and the log.
mode_tests() {
	local limit="${RUST_WQ_TEST_TIMEOUT:-600}" why seed=() stress loaded=0 scenarios
	stress=("--${RUST_WQ_STRESS_MODE:-long}")
	[ -n "${RUST_WQ_STRESS_SEED:-}" ] && seed=(--seed "$RUST_WQ_STRESS_SEED")
	prepare
	stage_begin load
	info "insmod $ko ${RUST_WQ_INSMOD_ARGS:-}"
	if why="$(do_insmod)"; then
		loaded=1
		result ok insmod
	else
		result "not ok" insmod "insmod failed"
		{ echo "$why"; log_since | tail -n 30; } | diag
	fi
	stage_end
	stage_begin stress
	if [ $loaded = 1 ]; then
		read -ra scenarios <<<"${RUST_WQ_STRESS_SCENARIOS:-permissions fuzz concurrency failslab failnth hotplug}"
		run_binary "rust_wq_stress ${scenarios[*]}" "$limit" "$bin/rust_wq_stress" \
			"${stress[@]}" "${seed[@]}" "${scenarios[@]}"
		armed_until 60
		torture_runs "${RUST_WQ_TORTURE_SECS:-120}"
	else
		result "not ok" rust_wq_stress "not run: insmod failed"
	fi
	stage_end
	unload_and_leaks $loaded "$limit" "${stress[@]}" --kmemleak reload
	check_kernel_log
}

# unload_and_leaks LOADED LIMIT [RELOAD-ARGS...]: the stage unload_and_leaks: rmmod, the
# stress scenario reload with RELOAD-ARGS if any (it needs the module unloaded and leaves
# it so; it arms delays of at most 3 s), kmemleak, the wait for every timer the run armed.
unload_and_leaks() {
	local loaded=$1 limit=$2 why
	shift 2
	stage_begin unload_and_leaks
	if [ "$loaded" = 0 ]; then
		result "not ok" rmmod_clean "not run: insmod failed"
		[ $# -eq 0 ] || result "not ok" reload "not run: insmod failed"
	elif why="$(do_rmmod)"; then
		result ok rmmod_clean
		if [ $# -gt 0 ]; then
			run_binary "rust_wq_stress reload" "$limit" "$bin/rust_wq_stress" "${seed[@]}" "$@"
			armed_until 3
		fi
	else
		result "not ok" rmmod_clean
		diag "$why"
		[ $# -eq 0 ] || result "not ok" reload "not run: rmmod failed"
	fi
	# kmemleak first: its scans and their waits take the time the timers still need (a
	# timer of the module that fires after rmmod is an oops, which the log scan after the
	# wait reports).
	check_kmemleak
	wait_timer_horizon
	stage_end
}

# check (make check): two boots that scripts/harness.py runs at the same time, each a whole
# guest (its own kernel, module, kernel log and leak scan), so that neither half can disturb
# the other's state and both of the host's cores are used (one boot keeps about one busy).
#   part 1: 4 CPUs, all online. The KUnit suites but rust_wq_races (at insmod; the kernel
#           command line's kunit.filter_glob), the e2e tests of lane 1 of 2, the
#           short stress scenarios concurrency, failslab, failnth and hotplug, rmmod, the
#           reload cycles, leaks, the log.
#   part 2: 5 vCPUs booted with maxcpus=4, so one possible CPU was never online (the case P6
#           of the layer needs such a CPU, and every other test here runs beside one). The
#           KUnit suite rust_wq_races, the short stress scenarios permissions and fuzz, the e2e
#           tests of lane 2, the torture seeds, abi_check, rmmod, leaks, the log.
#   all:    (make check-debian) one boot: the stages of part 1, with every KUnit suite (no
#           filter), the whole e2e suite, and every short stress scenario and the torture seeds
#           in its stage stress.
# The order within a part keeps the wait for armed timers short: whatever arms delays of up
# to 60 s (e2e, fuzz) runs as early as its part allows, and the e2e lanes (of about equal
# expected duration, `rust_wq_e2e --lane`) end at about the same time in both parts. A test
# binary nested here keeps its name first (scripts/inventory.py counts by it).
abi_check_stage() { # abi_check_stage LIMIT: the C program built from include/rust_wq.h
	stage_begin abi_check
	run_binary abi_check "$1" "$repo/build/abi_check"
	stage_end
}

mode_check() {
	local part=$1 limit="${RUST_WQ_TEST_TIMEOUT:-180}" why seed=() loaded=0 never lane head_start
	[ -n "${RUST_WQ_STRESS_SEED:-}" ] && seed=(--seed "$RUST_WQ_STRESS_SEED")
	# Part 2 runs permissions and fuzz (about 9 s) before its lane: lane 2 gets that much less.
	if [ "$part" = all ]; then lane=1/1 head_start=(); else lane="$part/2" head_start=("--lane-start=0,90"); fi
	prepare
	if [ "$part" != 2 ]; then
		stage_begin kunit
	else
		stage_begin kunit_maxcpus
		never="$(comm -23 <(seq 0 $(($(nproc --all) - 1))) <(seq 0 $(($(nproc) - 1))) 2>/dev/null | tr '\n' ' ')"
		if [ "$(cat /sys/devices/system/cpu/possible)" != "$(cat /sys/devices/system/cpu/online)" ]; then
			result ok never_online_cpus
			diag "possible: $(cat /sys/devices/system/cpu/possible), online: $(cat /sys/devices/system/cpu/online) ${never:+(offline: $never)}"
		else
			result "not ok" never_online_cpus "every possible CPU is online: the boot did not get maxcpus= below the vCPU count"
		fi
	fi
	info "insmod $ko (KUnit filter: $(tr ' ' '\n' </proc/cmdline | grep '^kunit.filter_glob=' || echo none))"
	if why="$(do_insmod)"; then
		loaded=1
		armed_until 60 # the KUnit cases arm (and cancel) delays of up to 30 s
		kunit_suites
		result ok insmod
	else
		result "not ok" rust_wq "not run: insmod failed"
		result "not ok" insmod "insmod failed"
		{ echo "$why"; log_since | tail -n 30; } | diag
	fi
	stage_end
	if [ "$part" = 2 ]; then
		stage_begin stress
		if [ $loaded = 1 ]; then
			run_binary "rust_wq_stress permissions fuzz" "$limit" "$bin/rust_wq_stress" "${seed[@]}" permissions fuzz
			armed_until 60 # fuzz arms delays up to max_delay_us (60 s)
		else
			result "not ok" rust_wq_stress "not run: insmod failed"
		fi
		stage_end
	fi
	stage_begin e2e
	if [ $loaded = 1 ]; then
		run_binary "rust_wq_e2e --lane $lane" "$limit" "$bin/rust_wq_e2e" --lane "$lane" "${head_start[@]}"
		armed_until 60 # delayed work of up to max_delay_us (60 s)
	else
		result "not ok" "rust_wq_e2e --lane $lane" "not run: insmod failed"
	fi
	stage_end
	[ "$part" != all ] || abi_check_stage "$limit"
	if [ "$part" != 2 ]; then
		stage_begin stress
		if [ $loaded = 0 ]; then
			result "not ok" rust_wq_stress "not run: insmod failed"
		else
			if [ "$part" = all ]; then
				run_binary "rust_wq_stress permissions fuzz" "$limit" "$bin/rust_wq_stress" "${seed[@]}" permissions fuzz
				armed_until 60
			fi
			run_binary "rust_wq_stress concurrency failslab failnth hotplug" "$limit" \
				"$bin/rust_wq_stress" "${seed[@]}" concurrency failslab failnth hotplug
			armed_until 10
			[ "$part" = all ] && torture_runs "${RUST_WQ_TORTURE_SECS:-6}"
		fi
		stage_end
		unload_and_leaks $loaded "$limit" reload
	else
		stage_begin torture
		if [ $loaded = 1 ]; then
			torture_runs "${RUST_WQ_TORTURE_SECS:-6}"
		else
			result "not ok" rust_wq_torture "not run: insmod failed"
		fi
		stage_end
		# (here rather than in part 1: part 2 would otherwise wait idle for its armed timers)
		abi_check_stage "$limit"
		unload_and_leaks $loaded "$limit"
	fi
	check_kernel_log
}

mode_run() {
	local fail=0 hits
	prepare
	info "insmod $ko ${RUST_WQ_INSMOD_ARGS:-}"
	if ! do_insmod; then
		info "insmod FAILED"
		fail=1
	else
		info "the edu device's interrupt in /proc/interrupts, before:"
		grep -E 'CPU|rust_wq_edu' /proc/interrupts | sed 's/^/  /'
		info "wqctl session --echo scripts/demo.session"
		timeout -k 5 180 "$bin/wqctl" session --echo "$repo/scripts/demo.session" ||
			{ info "wqctl session FAILED"; fail=1; }
		info "the edu device's interrupt in /proc/interrupts, after:"
		grep -E 'CPU|rust_wq_edu' /proc/interrupts | sed 's/^/  /'
	fi
	info "kernel log since the marker (the KUnit cases' lines left out; make check runs them):"
	log_since | grep -vE '^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\]     ' | sed 's/^/  /'
	if [ -d "/sys/module/$modname" ]; then
		info "rmmod $modname"
		rmmod "$modname" || { info "rmmod FAILED"; fail=1; }
	fi
	if ! dmesg | grep -F "$marker" >/dev/null; then
		info "the marker is no longer in the kernel log (ring buffer overflow?): the log scan cannot vouch for anything"
		fail=1
	elif ! hits="$(log_since | bash "$repo/scripts/dmesg-scan.sh" 2>&1)"; then
		info "the kernel log has splats:"
		sed 's/^/  /' <<<"$hits"
		fail=1
	fi
	if [ $fail -eq 0 ]; then info "run: OK"; else info "run: FAILED"; fi
	return $fail
}

# --- make bench ----------------------------------------------------------
# Environment (from scripts/harness.py bench): RUST_WQ_BENCH_KODIR (rust_wq.ko
# and rust_wq_ctwin.ko built for this kernel), RUST_WQ_BENCH_ITEMS,
# RUST_WQ_BENCH_REPEATS, RUST_WQ_BENCH_SETS (any of ops scopes tput scale),
# RUST_WQ_BENCH_C_KO (lib/test_workqueue.ko), RUST_WQ_BENCH_RUN_TIMEOUT.
# Writes OUT/records.jsonl (a measurement a line: Rust's from `wqctl bench
# --json`; for a load of the C twin or of test_workqueue, its kernel log in
# OUT/loads/, read by scripts/bench-report.py), OUT/kernel and the stage
# document OUT/bench.ktap (a result per run, rmmod, the log scan).
OP_ROWS=(
	queue:percpu queue:system-percpu queue-fresh:percpu queue-on:percpu
	delayed:system-percpu delayed:percpu mod-delayed:system-percpu mod-delayed:percpu
	cancel-idle:percpu cancel-armed:system-percpu cancel-armed:percpu
	cancel-sync-idle:percpu cancel-sync-armed:system-percpu cancel-sync-armed:percpu
	flush-idle:percpu disable:percpu enable:percpu static:system-percpu
)
# The rows that also run with Pin<KBox> items, and through upstream's kernel::workqueue
# (with Arc and with Pin<KBox>): what upstream can do (src/bench/upstream.rs).
VARIANT_ROWS=(queue:percpu queue:system-percpu queue-fresh:percpu delayed:system-percpu delayed:percpu)
# Scaling: dropping an owned queue with N armed items, and N CPUs arming on one queue.
DROP_NS=(10 1000 100000)
PAR_THREADS=(1 2 4)
SCOPES=(cpu smt cache_shard cache numa system)

bench_rust() { # bench_rust REP SET IMPL WQCTL-BENCH-ARGS...: IMPL rust (the layer) or upstream
	local rep=$1 set=$2 impl=$3 rc=0 n=(--items "$items")
	shift 3
	[ -z "$stuck" ] || return 0
	case " $* " in *" --items "*) n=() ;; esac # drop-armed: its own item count
	run_limited "$limit" "$bin/wqctl" bench "${n[@]}" --json "$@" || rc=$?
	if [ $rc -eq 0 ] && grep -q '^{.*}$' "$run_out"; then
		printf '{"impl":"%s","set":"%s","rep":%d,"order":"%s",%s\n' "$impl" "$set" "$rep" "$order" \
			"$(cut -c2- "$run_out")" >>"$out/records.jsonl"
		result ok "$impl rep $rep $set $*"
	else
		result "not ok" "$impl rep $rep $set $*" "$([ $rc = 124 ] && echo "timed out after $limit s" || echo "status $rc")"
		diag <"$run_out"
		[ -f "$run_out.hang" ] && diag <"$run_out.hang"
	fi
}

# bench_load REP SET IMPL KO ARGS...: a module that measures at init and
# refuses to stay (EAGAIN); its kernel log goes to OUT/loads/.
bench_load() {
	local rep=$1 set=$2 impl=$3 rc=0 m log name
	shift 3
	[ -z "$stuck" ] || return 0
	name="$impl rep $rep $set ${*:2}"
	log="loads/$((nloads += 1)).log"
	m="rust_wq-bench-load-marker $(date +%s%N)"
	echo "$m" >/dev/kmsg
	run_limited "$limit" insmod "$@" || rc=$?
	log_since "$m" | untimed >"$out/$log"
	if [ $rc -eq 124 ]; then
		result "not ok" "$name" "insmod timed out after $limit s"
		[ -f "$run_out.hang" ] && diag <"$run_out.hang"
	elif [ $rc -eq 0 ]; then
		result "not ok" "$name" "stayed loaded (expected EAGAIN)"
		rmmod "$(basename "${1%.ko}")"
	elif ! grep -qiE 'Resource temporarily unavailable|Try again' "$run_out"; then
		result "not ok" "$name" "insmod failed with something else than EAGAIN"
		{ cat "$run_out"; grep -E 'rust_wq_ctwin|test_workqueue' "$out/$log"; } | diag
	else
		printf '{"impl":"%s","set":"%s","rep":%d,"order":"%s","args":"%s","log":"%s"}\n' \
			"$impl" "$set" "$rep" "$order" "${*:2}" "$log" >>"$out/records.jsonl"
		result ok "$name"
	fi
}

bench_set() { # bench_set REP SET SIDE: one side (rust, upstream or c) of a set
	local rep=$1 s t n runs=""
	case "$2 $3" in
	"ops rust")
		for s in "${OP_ROWS[@]}"; do bench_rust "$rep" ops rust --op "${s%%:*}" --path "${s#*:}" --threads 1; done
		for s in "${VARIANT_ROWS[@]}"; do bench_rust "$rep" ops rust --op "${s%%:*}" --path "${s#*:}" --threads 1 --kbox; done ;;
	"ops upstream")
		for s in "${VARIANT_ROWS[@]}"; do
			bench_rust "$rep" ops upstream --op "${s%%:*}" --path "${s#*:}" --threads 1 --upstream
			bench_rust "$rep" ops upstream --op "${s%%:*}" --path "${s#*:}" --threads 1 --upstream --kbox
		done ;;
	"ops c") bench_load "$rep" ops ctwin "$kodir/rust_wq_ctwin.ko" "items=$items" "runs=$(IFS=,; echo "${OP_ROWS[*]}")" ;;
	"scale rust")
		for n in "${DROP_NS[@]}"; do bench_rust "$rep" scale rust --op drop-armed --path percpu --threads 1 --items "$n"; done
		for t in "${PAR_THREADS[@]}"; do
			[ "$t" -le "$(nproc)" ] || continue
			bench_rust "$rep" scale rust --op delayed-par --path percpu --threads "$t"
		done ;;
	"scale c")
		for n in "${DROP_NS[@]}"; do runs+="${runs:+,}drop-armed:percpu:$n"; done
		for t in "${PAR_THREADS[@]}"; do [ "$t" -gt "$(nproc)" ] || runs+=",delayed-par:percpu:$t"; done
		bench_load "$rep" scale ctwin "$kodir/rust_wq_ctwin.ko" "items=$items" "runs=$runs" ;;
	*" upstream") ;; # upstream's column exists for the ops set only
	"scopes rust")
		for s in "${SCOPES[@]}"; do
			bench_rust "$rep" scopes rust --op rt --path unbound-sysfs --scope "$s"
			bench_rust "$rep" scopes rust --op queue-fresh --path unbound-sysfs --scope "$s"
		done ;;
	"scopes c")
		bench_load "$rep" scopes c "$c_ko" "wq_items=$items"
		for s in "${SCOPES[@]}"; do
			bench_load "$rep" scopes ctwin "$kodir/rust_wq_ctwin.ko" "items=$items" \
				"runs=rt:unbound-sysfs:0,queue-fresh:unbound-sysfs:0" "scope=$s"
		done ;;
	"tput "*)
		for t in 1 2 4; do
			[ "$t" -le "$(nproc)" ] || continue
			if [ "$3" = rust ]; then bench_rust "$rep" tput rust --op rt --path percpu --threads "$t"; else runs+="${runs:+,}rt:percpu:$t"; fi
		done
		[ "$3" = rust ] || bench_load "$rep" tput ctwin "$kodir/rust_wq_ctwin.ko" "items=$items" "runs=$runs" ;;
	*) result "not ok" "set $2" "unknown set" ;;
	esac
}

mode_bench() {
	local kodir="$RUST_WQ_BENCH_KODIR" items="$RUST_WQ_BENCH_ITEMS" c_ko="$RUST_WQ_BENCH_C_KO" rep set why hits
	local limit="${RUST_WQ_BENCH_RUN_TIMEOUT:-$((60 + 60 * ((items + 999) / 1000)))}" nloads=0
	mkdir -p "$out/loads"
	: >"$out/records.jsonl"
	echo "$(uname -r) $([ -e /proc/lockdep ] && echo debug || echo release)" >"$out/kernel"
	info "items=$items repeats=$RUST_WQ_BENCH_REPEATS sets='$RUST_WQ_BENCH_SETS' run_timeout=${limit}s cpus=$(nproc) $(uname -r)"
	stage_begin bench
	echo "$marker" >/dev/kmsg
	if ! why="$(insmod "$kodir/rust_wq.ko" 2>&1)"; then
		result "not ok" insmod "$why"
	else
		result ok insmod
		for rep in $(seq "$RUST_WQ_BENCH_REPEATS"); do
			for set in $RUST_WQ_BENCH_SETS; do
				info "repeat $rep: $set"
				# Alternate the order of the sides: C first on odd repeats, last on even ones.
				if [ $((rep % 2)) -eq 1 ]; then
					order=c-first
					bench_set "$rep" "$set" c; bench_set "$rep" "$set" rust; bench_set "$rep" "$set" upstream
				else
					order=rust-first
					bench_set "$rep" "$set" upstream; bench_set "$rep" "$set" rust; bench_set "$rep" "$set" c
				fi
			done
		done
		if [ -n "$stuck" ]; then
			result "not ok" rmmod "a run is stuck in the kernel: later runs and rmmod skipped"
		elif why="$(rmmod rust_wq 2>&1)"; then result ok rmmod; else result "not ok" rmmod "$why"; fi
	fi
	log_since | untimed >"$out/dmesg.txt"
	if ! dmesg | grep -F "$marker" >/dev/null; then
		result "not ok" dmesg_clean "the marker is no longer in the kernel log (ring buffer overflow?)"
	elif hits="$(bash "$repo/scripts/dmesg-scan.sh" <"$out/dmesg.txt" 2>&1)" && [ -z "$hits" ]; then
		result ok dmesg_clean
	else
		result "not ok" dmesg_clean
		diag "$hits"
	fi
	stage_end
}

# binary LIMIT CMD...: CMD run as run_binary runs a test binary, the stage
# document on stdout (the rest on stderr); the harness's self-tests use it.
mode_binary() {
	local limit="$1"
	shift
	{
		stage_begin binary
		run_binary "$(basename "$1")" "$limit" "$@"
		stage_end
	} >&2
	cat "$out/binary.ktap"
}

# --- make mutants -----------------------------------------------------------
# OUT/list: one mutant a line, NAME<TAB>KO<TAB>KIND<TAB>TEST (scripts/mutants.py).
# For each: insmod KO (KUnit limited to TEST, or to nothing), TEST alone, rmmod,
# the log scan since its insmod; one line NAME<TAB>caught|elsewhere|survived<TAB>HOW
# appended to OUT/results.  A module that cannot be unloaded, or a kernel that
# oopsed (taint D), ends the boot (a line "(stopped)"): the host boots again for
# the rest.
mode_mutants() {
	local name ko kind test rc status how hits limit="${RUST_WQ_MUTANT_TIMEOUT:-120}"
	local filter=/sys/module/kunit/parameters/filter_glob
	mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	: >>"$out/results"
	while IFS=$'\t' read -r name ko kind test; do
		info "mutant $name: $kind $test"
		marker="rust_wq-mutant-marker $name $(date +%s%N)"
		echo 1 2>/dev/null >/sys/kernel/debug/clear_warn_once
		echo "$marker" >/dev/kmsg
		# (printf: a trailing newline would become part of the glob)
		if [ "$kind" = kunit ]; then printf %s "$test" >"$filter"; else printf %s rust_wq_mutant_skips_kunit >"$filter"; fi
		status=survived how="$kind $test passed"
		rc=0
		if [ "$kind $test" = "stress reload" ]; then
			run_limited "$limit" "$bin/rust_wq_stress" --seed 1 --ko "$ko" reload || rc=$?
			grep -q '^not ok 1 reload' "$run_out" && status=caught how="reload failed"
		elif ! RUST_WQ_KO="$ko" run_limited "$limit" insmod "$ko"; then
			status=elsewhere how="insmod failed: $(head -c 200 "$run_out")"
		else
			case "$kind" in
			kunit)
				if log_since | untimed | grep -Eq "^ *not ok [0-9]+ ${test#*.}\$"; then
					status=caught how="KUnit $test failed"
				elif ! log_since | untimed | grep -Eq "^ *ok [0-9]+ ${test#*.}\$"; then
					status=elsewhere how="KUnit printed no result for $test"
				fi ;;
			e2e) RUST_WQ_KO="$ko" run_limited "$limit" "$bin/rust_wq_e2e" "$test" || rc=$? ;;
			stress) run_limited "$limit" "$bin/rust_wq_stress" --seed 1 "$test" || rc=$? ;;
			esac
			if [ "$kind" != kunit ]; then
				if [ $rc -eq 124 ]; then status=caught how="$test timed out after $limit s"
				elif grep -q "^not ok 1 $test\$" "$run_out"; then status=caught how="$test failed: $(grep -m1 ': FAIL: ' "$run_out" | cut -c1-200)"
				elif ! grep -q "^ok 1 $test\$" "$run_out"; then status=elsewhere how="no result for $test (status $rc)"
				fi
			fi
			if [ -n "$stuck" ] || ! rmmod "$modname" 2>/dev/null; then
				[ $status = caught ] || { status=elsewhere how="rmmod failed"; }
				printf '%s\t%s\t%s\n(stopped)\t\t\n' "$name" "$status" "$how" >>"$out/results"
				return 0
			fi
		fi
		if [ $status = survived ] && ! hits="$(log_since | bash "$repo/scripts/dmesg-scan.sh" 2>&1)"; then
			status=elsewhere how="log scan: $(head -n 1 <<<"$hits" | cut -c1-200)"
		fi
		printf '%s\t%s\t%s\n' "$name" "$status" "$how" >>"$out/results"
		info "mutant $name: $status ($how)"
		# A mutant can oops the kernel after its verdict (a leaked item run after the
		# rmmod, in freed module text): a kernel that died once (taint D) would blame
		# the mutants after it, so the host boots again for the rest.
		if (($(cat /proc/sys/kernel/tainted) & 128)); then
			info "the kernel oopsed during mutant $name: the rest in a new boot"
			printf '(stopped)\t\t\n' >>"$out/results"
			return 0
		fi
	done <"$out/list"
}

case "$mode" in
check) mode_check 1 ;;
check2) mode_check 2 ;;
check-all) mode_check all ;;
stress) mode_tests ;;
mutants) mode_mutants ;;
binary) shift 3; mode_binary "$@" ;;
run) mode_run ;;
bench) mode_bench ;;
*) echo "usage: guest.sh check|check2|check-all|stress|mutants|binary|run|bench REPO [OUT]" >&2; exit 2 ;;
esac
