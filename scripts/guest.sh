#!/usr/bin/env bash
# What runs inside the test VM (as root).  Started by scripts/check.sh and
# scripts/run.sh through scripts/vm.sh; the host's filesystem is visible
# read-only at the same paths.
#
# Usage: scripts/guest.sh check|run|lib [REPO]
#
#   check  arm the log scan, load the module (its KUnit suite runs at
#          insmod), run build/abi_check, wqctl/target/release/rust_wq_e2e and
#          the short stress scenarios, unload, reload cycles, wait until every
#          timer the run could have armed has expired, then kmemleak, the
#          kernel log, the taint mask and lockdep.  Prints, in stages:
#            RWQ-RESULT ok NAME [# directive]   /   RWQ-RESULT not ok NAME
#            RWQ-DIAG text                      (details of the last result)
#            RWQ-STAGE NAME N                   (stage NAME printed N results)
#          and RWQ-DONE N (N results in all) at the very end; scripts/check.sh
#          checks the counts and renumbers the results into the final KTAP
#          report.  Everything else is informational.  Every stage reports,
#          also when it could not run (as a failure).  Stages: setup insmod
#          kunit abi_check e2e stress rmmod reload kmemleak kernel_log.
#   run    load the module, run the session scripts/demo.session (wqctl
#          session --echo), print the kernel log from the marker on, unload;
#          exit 0 on success.
#   lib    define the functions only (sourced by scripts/stress-guest.sh).
#
# Environment (all optional):
#   RUST_WQ_KO       module to load (default REPO/rust_wq.ko); also exported to
#                    rust_wq_e2e, which must leave the module loaded when done
#   RUST_WQ_INSMOD_ARGS  module parameters for insmod
#   RUST_WQ_TEST_TIMEOUT seconds allowed to each test binary (default 180)
#   RUST_WQ_STRESS_SEED  seed for rust_wq_stress (default: a new one, printed)
#   RUST_WQ_REQUIRE  debug features the kernel is configured with (from
#                    scripts/lib.sh required_features; also read by the test
#                    binaries): missing at run time, they fail instead of
#                    skipping.  Words: debugfs kmemleak failslab hotplug
#                    lockdep slub_debug kunit
set -uo pipefail

mode="${1:?usage: guest.sh check|run|lib [REPO]}"
repo="${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
ko="${RUST_WQ_KO:-$repo/rust_wq.ko}"
modname="$(basename "$ko" .ko | tr - _)"
test_timeout="${RUST_WQ_TEST_TIMEOUT:-180}"
export RUST_WQ_KO="$ko"
export PATH="/usr/sbin:/sbin:/usr/bin:/bin:$PATH"

# The marker is unique per run, so repeated runs in one boot work.
marker="rust_wq-test-marker $(date +%s%N 2>/dev/null || echo $$)"
kml=/sys/kernel/debug/kmemleak

# Every RWQ-RESULT line printed is also appended here, so that each stage
# can say how many results it printed (RWQ-STAGE) and the end how many in all.
rwq_log="$(mktemp /tmp/rust_wq-results.XXXXXX 2>/dev/null || echo /tmp/rust_wq-results.$$)"
: >"$rwq_log"
stage_start=0

emit() { # stdin: RWQ lines; printed, results recorded
	tee -a "$rwq_log"
}
result() { # result ok|"not ok" NAME [DIRECTIVE]
	printf 'RWQ-RESULT %s %s%s\n' "$1" "$2" "${3:+ # $3}" | emit
}
nresults() { grep -c '^RWQ-RESULT ' "$rwq_log"; }
stage_end() { # stage_end NAME: the results printed since the last stage
	local n
	n="$(nresults)"
	echo "RWQ-STAGE $1 $((n - stage_start))"
	stage_start=$n
}
done_line() { echo "RWQ-DONE $(nresults)"; }
diag() { # each line of "$*" (or of stdin with no arguments) as a diagnostic
	if [ $# -gt 0 ]; then printf '%s\n' "$*"; else cat; fi |
		sed -E 's/^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ?//; s/^/RWQ-DIAG /'
}
info() { printf '[guest] %s\n' "$*"; }

# Is debug feature $1 required (the kernel is configured with it)?
required() { [[ " ${RUST_WQ_REQUIRE:-} " == *" $1 "* ]]; }
# not_available NAME FEATURE WHY: a result for something that cannot be
# checked here: a failure when the kernel is configured with FEATURE.
not_available() {
	if required "$2"; then
		result "not ok" "$1" "$3, but the kernel is configured with $2 (RUST_WQ_REQUIRE)"
	else
		result ok "$1" "SKIP $3"
	fi
}

# Kernel log after the marker.
log_since_marker() {
	dmesg 2>/dev/null | awk -v m="$marker" 'index($0, m) { found = 1 } found { print }'
}

# debug_locks from /proc/lockdep_stats (empty when lockdep is not built in).
debug_locks() {
	awk '$1 == "debug_locks:" { print $2 }' /proc/lockdep_stats 2>/dev/null
}
tainted() { cat /proc/sys/kernel/tainted 2>/dev/null || echo unknown; }

# Arms the log scan and writes the marker.  Sets: debugfs_ok, warn_once_ok,
# taint0 (the taint mask before the module is loaded), locks0 (debug_locks).
prepare() {
	debugfs_ok=0 warn_once_ok=0
	mountpoint -q /sys/kernel/debug 2>/dev/null ||
		mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	mountpoint -q /sys/kernel/debug 2>/dev/null && debugfs_ok=1
	if [ -w "$kml" ]; then
		# Report, then forget, whatever boot left behind: only what leaks
		# after the marker must fail kmemleak_clean.
		echo scan >"$kml" 2>/dev/null
		echo clear >"$kml" 2>/dev/null
	fi
	# *_ONCE warnings (pr_warn_once, WARN_ONCE, printk_once: "deprecated
	# workqueue" is one) that fired before the marker would stay silent
	# after it: reset their state so that they can fire again.
	if [ $debugfs_ok = 1 ] && echo 1 >/sys/kernel/debug/clear_warn_once 2>/dev/null; then
		warn_once_ok=1
	fi
	taint0="$(tainted)"
	locks0="$(debug_locks)"
	echo "$marker" >/dev/kmsg
}

# The results of prepare(): whether the log scan can see what it must.
report_setup() {
	if [ $debugfs_ok = 1 ]; then
		result ok setup.debugfs
	else
		not_available setup.debugfs debugfs "debugfs is not mounted at /sys/kernel/debug"
	fi
	if [ $warn_once_ok = 1 ]; then
		result ok setup.clear_warn_once
	else
		not_available setup.clear_warn_once debugfs "cannot write /sys/kernel/debug/clear_warn_once: *_ONCE warnings printed before the marker would stay silent"
	fi
	if [ "$locks0" = 1 ]; then
		result ok setup.lockdep_on
	elif [ -z "$locks0" ]; then
		not_available setup.lockdep_on lockdep "no /proc/lockdep_stats (lockdep not built in)"
	else
		result "not ok" setup.lockdep_on "debug_locks is $locks0 before the module is loaded: lockdep switched itself off (an earlier report?) and would see nothing"
		grep -iE 'lockdep|debug_locks|turning off the locking' <(dmesg) | tail -n 5 | diag
	fi
	local sl=/sys/kernel/slab/kmalloc-64 v
	v="$(cat $sl/sanity_checks $sl/red_zone $sl/poison 2>/dev/null | tr -d '\n')"
	if [ "$v" = 111 ]; then
		result ok setup.slub_debug
	else
		not_available setup.slub_debug slub_debug "slub_debug is not active (kmalloc-64 sanity_checks/red_zone/poison: '$v'; boot with slub_debug=FZP)"
	fi
	if [ -w "$kml" ]; then
		result ok setup.kmemleak
	else
		not_available setup.kmemleak kmemleak "$kml is not available"
	fi
	if [ "$taint0" = unknown ]; then
		result "not ok" setup.taint "cannot read /proc/sys/kernel/tainted"
	else
		result ok setup.taint
		diag "taint mask before the module is loaded: $taint0"
	fi
	local allow
	if ! allow="$("$repo/scripts/dmesg-scan.sh" --list-allow 2>&1)"; then
		result "not ok" setup.dmesg_allow_list "the allow-list of scripts/dmesg-scan.sh is invalid"
		printf '%s\n' "$allow" | diag
	else
		result ok setup.dmesg_allow_list
		[ -n "$allow" ] && printf '%s\n' "$allow" | sed 's/^/active allow-list entry: /' | diag
	fi
	return 0
}

# KTAP (possibly nested, indented, timestamped) -> RWQ-RESULT lines for the
# leaf tests only.  A result line is a parent (skipped) when it closes a
# "# Subtest: NAME" block of the same name, or when the result line before it
# was indented deeper.  A failed parent with no failed leaf is reported too.
# Diagnostic lines seen since the previous result are attached to a failure.
# With checkplan=1, every block (each indentation level, top and nested) must
# have a plan line ("1..N") and exactly N results: a missing plan, a missing
# or extra result, a "Bail out!" and a line that looks like a result but
# cannot be parsed are failures (PREFIX.plan, PREFIX.bail_out,
# PREFIX.unparsed).  With keepdiag=1, passing tests keep their last 12
# diagnostic lines too (the stress scenarios print their counts).
ktap_leaves() { # ktap_leaves PREFIX CHECKPLAN [KEEPDIAG]
	awk -v prefix="$1" -v checkplan="$2" -v keepdiag="${3:-0}" '
	function flush_diag(   i) { for (i = 1; i <= nb; i++) print "RWQ-DIAG " buf[i]; nb = 0 }
	function where(   k, w) { w = ""; for (k = 1; k <= sp; k++) w = w (w == "" ? "" : ".") stack[k]; return w == "" ? "top level" : "subtest " w }
	# Closes the planned blocks indented deeper than ind (all with ind < 0).
	function close_blocks(ind,   j) {
		for (j in planned) {
			if (j + 0 <= ind) continue
			if (checkplan && got[j] != planned[j])
				bad("plan", "planned " planned[j] " tests in the " bname[j] ", got " got[j] " results")
			delete planned[j]; delete got[j]
		}
	}
	function bad(what, why) { print "RWQ-RESULT not ok " prefix "." what " # " why; nfail++; nbad++ }
	{
		line = $0
		sub(/^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ?/, "", line)
		match(line, /^[ \t]*/); ind = RLENGTH; body = substr(line, ind + 1)
		sub(/[ \t\r]+$/, "", body)
		if (body ~ /^# Subtest: /) {
			sp++; stack[sp] = substr(body, 12); failsat[sp] = nfail; nb = 0; next
		}
		if (body ~ /^Bail out!/) { bad("bail_out", body); next }
		if (body ~ /^(not )?ok([ \t]|$)/ && body !~ /^(not )?ok [0-9]+( |$)/) {
			bad("unparsed", "a result line that is not KTAP: " body); next
		}
		if (body ~ /^(not )?ok [0-9]+( |$)/) {
			ok = (body ~ /^ok/)
			rest = body; sub(/^(not )?ok [0-9]+ ?/, "", rest)
			name = rest; directive = ""
			if ((i = index(rest, " # ")) > 0) { name = substr(rest, 1, i - 1); directive = substr(rest, i + 3) }
			else if (rest ~ /^#/) { name = ""; directive = rest; sub(/^# ?/, "", directive) }
			sub(/^- /, "", name)
			if (name == "") name = "test" (nres + 1)
			gsub(/ /, "_", name)
			close_blocks(ind)
			if (ind in planned) got[ind]++
			else if (checkplan && !((ind, "noplan") in warned)) {
				warned[ind, "noplan"] = 1
				bad("plan", "results without a plan line in the " where())
			}
			isparent = 0
			if (sp > 0 && stack[sp] == name) { isparent = 1; fa = failsat[sp]; sp-- }
			else if (nres > 0 && ind < lastind) { isparent = 1; fa = 0 }
			lastind = ind; nres++
			full = prefix
			for (k = 1; k <= sp; k++) full = full "." stack[k]
			full = full "." name
			if (isparent) {
				if (!ok && nfail == fa && directive !~ /^(SKIP|skip)/) {
					print "RWQ-RESULT not ok " full
					flush_diag(); nfail++; nleaf++
				}
				nb = 0; next
			}
			nleaf++
			if (directive != "") directive = " # " directive
			if (ok) {
				print "RWQ-RESULT ok " full directive
				if (keepdiag) { for (i = (nb > 12 ? nb - 11 : 1); i <= nb; i++) print "RWQ-DIAG " buf[i] }
				nb = 0
			}
			else { print "RWQ-RESULT not ok " full directive; flush_diag(); nfail++ }
			next
		}
		if (body ~ /^1\.\.[0-9]+/) {
			close_blocks(ind)
			if (ind in planned && checkplan) bad("plan", "a second plan line in the " where() ": " body)
			p = body; sub(/^1\.\./, "", p)
			planned[ind] = p + 0; got[ind] = 0; bname[ind] = where()
			next
		}
		if (body ~ /^K?TAP version/ || body == "") next
		sub(/^# /, "", body)
		if (nb < 40) buf[++nb] = body
	}
	END {
		close_blocks(-1)
		if (nleaf == 0 && nbad == 0) {
			print "RWQ-RESULT not ok " prefix " # no KTAP results found"
			flush_diag()
		} else if (nb > 0 && nbad > 0) flush_diag()
	}'
}

# Run a KTAP-printing test binary and turn its output into results.
# KTAP_KEEPDIAG=1: keep the diagnostics of passing tests (see ktap_leaves).
run_ktap_binary() { # run_ktap_binary PREFIX BINARY [ARGS...]
	local prefix="$1" bin="$2" out rc=0
	shift 2
	if [ ! -x "$bin" ]; then
		result "not ok" "$prefix" "binary $bin missing (make user)"
		return
	fi
	info "running $bin $*"
	out="$(timeout -k 5 "$test_timeout" "$bin" "$@" 2>&1)" || rc=$?
	printf '%s\n' "$out" | sed 's/^/[guest]   /'
	printf '%s\n' "$out" | ktap_leaves "$prefix" 1 "${KTAP_KEEPDIAG:-0}" | emit
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		result "not ok" "$prefix.exit" "timed out after $test_timeout s"
	elif [ $rc -ne 0 ] && ! grep -Eq '^[[:space:]]*not ok ' <<<"$out"; then
		# A failing exit status with no failed test line: report it.
		result "not ok" "$prefix.exit" "exit status $rc"
	fi
}

do_insmod() {
	local out rc=0
	if [ ! -f "$ko" ]; then
		echo "module $ko not found (make module)"
		return 1
	fi
	# shellcheck disable=SC2086
	out="$(insmod "$ko" ${RUST_WQ_INSMOD_ARGS:-} 2>&1)" || rc=$?
	[ -n "$out" ] && echo "$out"
	return $rc
}

do_rmmod() {
	local out rc=0
	if [ ! -d "/sys/module/$modname" ]; then
		echo "module $modname is not loaded before rmmod (rust_wq_e2e must leave it loaded)"
		return 1
	fi
	out="$(rmmod "$modname" 2>&1)" || rc=$?
	[ -n "$out" ] && echo "$out"
	if [ $rc -eq 0 ] && [ -d "/sys/module/$modname" ]; then
		echo "/sys/module/$modname still exists after rmmod"
		return 1
	fi
	# The module's WQ_SYSFS queue must be gone with it (else a leaked
	# reference kept the queues alive and the next insmod fails).
	local left
	left="$(ls /sys/bus/workqueue/devices 2>/dev/null | grep "^$modname" || true)"
	if [ $rc -eq 0 ] && [ -n "$left" ]; then
		echo "rmmod succeeded but the module's workqueues are still registered: $left" \
			"(/sys/bus/workqueue/devices; a leaked reference kept them alive)"
		return 1
	fi
	return $rc
}

# kmemleak: an object is reported only once it is 5 s old and a scan found
# it unreferenced; prepare() reported and cleared everything from before.
check_kmemleak() {
	if [ ! -w "$kml" ]; then
		not_available kmemleak_clean kmemleak "kmemleak not available"
		return
	fi
	# A third scan makes a stale reference (a false negative) less likely.
	if ! echo scan >"$kml" 2>/dev/null; then
		# Disabled on the way (e.g. out of memory for its metadata): any
		# "clean" verdict would be empty.
		result "not ok" kmemleak_clean "kmemleak refused a scan (disabled?)"
		dmesg 2>/dev/null | grep -i kmemleak | tail -n 5 | diag
		return
	fi
	sleep 5
	echo scan >"$kml" 2>/dev/null
	sleep 1
	echo scan >"$kml" 2>/dev/null
	local leaks
	leaks="$(cat "$kml" 2>/dev/null)"
	if [ -z "$leaks" ]; then
		result ok kmemleak_clean
	else
		result "not ok" kmemleak_clean
		printf '%s\n' "$leaks" | head -n 60 | diag
	fi
}

check_dmesg() {
	local hits rc=0
	# (no grep -q in pipelines: with pipefail, SIGPIPE of the writer fails them)
	if ! dmesg 2>/dev/null | grep -F "$marker" >/dev/null; then
		result "not ok" dmesg_clean "the marker is no longer in the kernel log (ring buffer overflow?)"
		return
	fi
	hits="$(log_since_marker | "$repo/scripts/dmesg-scan.sh" 2>&1)" || rc=$?
	if [ $rc -eq 0 ]; then
		result ok dmesg_clean
	else
		result "not ok" dmesg_clean "$([ $rc -eq 1 ] || echo "scripts/dmesg-scan.sh failed with status $rc")"
		printf '%s\n' "$hits" | head -n 80 | diag
	fi
}

# Taint flags the run may add: O (out-of-tree module, bit 12), E (unsigned
# module, bit 13), N (KUnit tests ran, bit 18).  Any other new bit (W: a
# warning, D: an oops, B: bad page, L: soft lockup, ...) fails.
check_taint() {
	local t1 allowed=$(((1 << 12) | (1 << 13) | (1 << 18))) new
	t1="$(tainted)"
	if [ "$t1" = unknown ] || [ "$taint0" = unknown ]; then
		result "not ok" taint_clean "cannot read /proc/sys/kernel/tainted"
		return
	fi
	new=$((t1 & ~taint0 & ~allowed))
	if [ $new -eq 0 ]; then
		result ok taint_clean
		diag "taint mask $taint0 before the module, $t1 at the end"
	else
		result "not ok" taint_clean "the kernel got new taint flags during the run: mask $taint0 -> $t1 (new, unexpected bits: $new; see Documentation/admin-guide/tainted-kernels.rst)"
	fi
}

# lockdep turns itself off after its first report: if it is off now, the log
# scan cannot vouch for the locking of anything after that point.
check_lockdep() {
	local l1
	l1="$(debug_locks)"
	if [ -z "$l1" ]; then
		not_available lockdep_still_on lockdep "no /proc/lockdep_stats (lockdep not built in)"
	elif [ "$l1" = 1 ]; then
		result ok lockdep_still_on
	else
		result "not ok" lockdep_still_on "debug_locks is $l1 at the end of the run: lockdep switched itself off (after a report, or another debug facility turned it off)"
		log_since_marker | grep -iE 'lockdep|debug_locks|turning off' | head -n 10 | diag
	fi
}

# The run may have armed delayed work up to $1 s from now: if the module
# failed to cancel one of those timers, it fires at the latest then (and, with
# the module gone, oopses).  Remember when the last of them expires.
timer_horizon=0
armed_until() { # armed_until SECONDS
	local t=$(($(date +%s) + $1))
	[ $t -gt $timer_horizon ] && timer_horizon=$t
	return 0
}
wait_timer_horizon() {
	local now left
	now=$(date +%s)
	left=$((timer_horizon - now + 1))
	if [ $left -gt 0 ]; then
		info "waiting $left s until every timer the run could have armed has expired"
		sleep "$left"
	fi
}

mode_check() {
	prepare
	report_setup
	stage_end setup

	local out rc=0
	info "insmod $ko ${RUST_WQ_INSMOD_ARGS:-}"
	out="$(do_insmod)" || rc=$?
	if [ $rc -eq 0 ]; then
		result ok insmod
		armed_until 60 # the KUnit cases arm (and cancel) delays of up to 30 s
	else
		result "not ok" insmod "insmod failed with status $rc"
		{ printf '%s\n' "$out"; log_since_marker | tail -n 30; } | diag
	fi
	stage_end insmod

	if [ $rc -eq 0 ]; then
		# KUnit ran synchronously during insmod: its KTAP is in the log now.
		log_since_marker | ktap_leaves kunit 1 | emit
	else
		result "not ok" kunit "not run: insmod failed"
	fi
	stage_end kunit

	run_ktap_binary abi_check "$repo/build/abi_check"
	stage_end abi_check

	local stress="$repo/wqctl/target/release/rust_wq_stress" seed=()
	[ -n "${RUST_WQ_STRESS_SEED:-}" ] && seed=(--seed "$RUST_WQ_STRESS_SEED")
	if [ $rc -eq 0 ]; then
		# rust_wq_e2e arms delayed work of up to max_delay_us (60 s).
		run_ktap_binary e2e "$repo/wqctl/target/release/rust_wq_e2e"
		armed_until 60
		stage_end e2e
		# The short stress scenarios (each its own result, with its counts):
		# fuzz arms delays up to max_delay_us (60 s), the others up to 10 s
		# (two runs, so that the wait for the timers at the end is short).
		KTAP_KEEPDIAG=1 run_ktap_binary stress "$stress" "${seed[@]}" permissions fuzz
		armed_until 60
		KTAP_KEEPDIAG=1 run_ktap_binary stress "$stress" "${seed[@]}" \
			concurrency failslab failnth hotplug
		armed_until 10
		stage_end stress
		info "rmmod $modname"
		if out="$(do_rmmod)"; then
			result ok rmmod_clean
			stage_end rmmod
			# Reload cycles need the module unloaded; they leave it so.  They
			# arm delays of at most 3 s.
			KTAP_KEEPDIAG=1 run_ktap_binary stress "$stress" "${seed[@]}" reload
			armed_until 3
		else
			result "not ok" rmmod_clean
			printf '%s\n' "$out" | diag
			stage_end rmmod
			result "not ok" stress.reload "not run: rmmod failed"
		fi
		stage_end reload
	else
		info "module not loaded: skipping rust_wq_e2e, the stress scenarios and rmmod"
		local st
		for st in e2e stress rmmod reload; do
			result "not ok" "$st" "not run: insmod failed"
			stage_end "$st"
		done
	fi
	wait_timer_horizon
	check_kmemleak
	stage_end kmemleak
	check_dmesg
	check_taint
	check_lockdep
	stage_end kernel_log
	done_line
}

mode_run() {
	prepare
	local out fail=0 wqctl="$repo/wqctl/target/release/wqctl"
	info "insmod $ko ${RUST_WQ_INSMOD_ARGS:-}"
	if ! out="$(do_insmod)"; then
		printf '%s\n' "$out"
		info "insmod FAILED"
		fail=1
	else
		info "$wqctl session --echo scripts/demo.session"
		if ! timeout -k 5 "$test_timeout" "$wqctl" session --echo "$repo/scripts/demo.session"; then
			info "wqctl session FAILED"
			fail=1
		fi
	fi
	info "kernel log since the marker (the KUnit cases' lines left out; make check runs them):"
	log_since_marker | grep -vE '^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\]     ' | sed 's/^/  /'
	if [ -d "/sys/module/$modname" ]; then
		info "rmmod $modname"
		if ! rmmod "$modname"; then
			info "rmmod FAILED"
			fail=1
		fi
	fi
	local hits
	if ! hits="$(log_since_marker | "$repo/scripts/dmesg-scan.sh")"; then
		info "the kernel log has splats:"
		printf '%s\n' "$hits" | sed 's/^/  /'
		fail=1
	fi
	if [ $fail -eq 0 ]; then info "run: OK"; else info "run: FAILED"; fi
	return $fail
}

case "$mode" in
check) mode_check ;;
run) mode_run ;;
lib) ;;
*) echo "usage: guest.sh check|run|lib [REPO]" >&2; exit 2 ;;
esac
