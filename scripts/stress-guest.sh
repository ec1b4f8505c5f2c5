#!/usr/bin/env bash
# What `make stress` runs inside the test VM (as root): the long versions of
# the rust_wq_stress scenarios.  Started by scripts/stress.sh through
# scripts/vm.sh; prints the same RWQ-RESULT / RWQ-DIAG / RWQ-STAGE / RWQ-DONE
# lines as scripts/guest.sh (whose functions it uses).  Stages: setup insmod
# stress rmmod reload kmemleak kernel_log.
#
# Usage: scripts/stress-guest.sh [REPO]
#
#   1. insmod (marker in the kernel log first)
#   2. rust_wq_stress --long: permissions fuzz concurrency failslab failnth hotplug
#   3. rmmod_clean
#   4. rust_wq_stress --long --kmemleak reload (insmod/load/close/rmmod cycles)
#   5. once every timer the run could have armed has expired: kmemleak_clean,
#      dmesg_clean (everything since the marker), taint_clean, lockdep_still_on
#
# Environment (all optional): RUST_WQ_KO, RUST_WQ_INSMOD_ARGS,
# RUST_WQ_STRESS_SEED (replay a run), RUST_WQ_STRESS_MODE (long, or short
# for a quick try of the same sequence), RUST_WQ_STRESS_SCENARIOS (subset of
# the scenarios of step 2, space-separated), RUST_WQ_TEST_TIMEOUT (seconds
# per rust_wq_stress run, default 600).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="${1:-$(cd "$here/.." && pwd)}"
export RUST_WQ_TEST_TIMEOUT="${RUST_WQ_TEST_TIMEOUT:-600}"
# shellcheck source=guest.sh
source "$here/guest.sh" lib "$repo"

stress="$repo/wqctl/target/release/rust_wq_stress"
mode_arg="--${RUST_WQ_STRESS_MODE:-long}"
seed=()
[ -n "${RUST_WQ_STRESS_SEED:-}" ] && seed=(--seed "$RUST_WQ_STRESS_SEED")
# shellcheck disable=SC2206
scenarios=(${RUST_WQ_STRESS_SCENARIOS:-permissions fuzz concurrency failslab failnth hotplug})

# Like guest.sh's run_ktap_binary, but the output goes to a file as it comes
# and a hang does not block the run: after the time limit the partial output
# is reported together with the kernel stacks of the binary's threads.
run_stress() { # run_stress PREFIX ARGS...
	local prefix="$1" out pid rc=0 t=0 hung=""
	shift
	out="$(mktemp /tmp/rust_wq_stress.XXXXXX)"
	info "running $stress $*"
	"$stress" "$@" >"$out" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null && [ "$t" -lt "$test_timeout" ]; do
		sleep 1
		t=$((t + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		hung=1
		{
			echo "still running after $test_timeout s; kernel stacks of its threads:"
			for d in /proc/"$pid"/task/*; do
				echo "task ${d##*/} $(grep '^State' "$d/status" 2>/dev/null)"
				cat "$d/stack" 2>/dev/null
			done
		} >"$out.hang"
		kill -9 "$pid" 2>/dev/null # (a task stuck in the kernel stays)
	else
		wait "$pid" || rc=$?
	fi
	sed 's/^/[guest]   /' "$out"
	ktap_leaves "$prefix" 1 1 <"$out" | emit
	if [ -n "$hung" ]; then
		result "not ok" "$prefix.exit" "hung: still running after $test_timeout s"
		head -n 50 "$out.hang" | diag
	elif [ $rc -ne 0 ] && ! grep -Eq '^[[:space:]]*not ok ' "$out"; then
		result "not ok" "$prefix.exit" "exit status $rc"
	fi
}

prepare
report_setup
stage_end setup
info "insmod $ko ${RUST_WQ_INSMOD_ARGS:-}"
rc=0
out="$(do_insmod)" || rc=$?
if [ $rc -eq 0 ]; then
	result ok insmod
	stage_end insmod
	run_stress stress "$mode_arg" "${seed[@]}" "${scenarios[@]}"
	armed_until 60 # fuzz arms delays up to max_delay_us
	stage_end stress
	info "rmmod $modname"
	if out="$(do_rmmod)"; then
		result ok rmmod_clean
		stage_end rmmod
		run_stress stress "$mode_arg" --kmemleak "${seed[@]}" reload
		armed_until 3 # reload arms delays of at most 3 s
	else
		result "not ok" rmmod_clean
		printf '%s\n' "$out" | diag
		stage_end rmmod
		result "not ok" stress.reload "not run: rmmod failed"
	fi
	stage_end reload
else
	result "not ok" insmod "insmod failed with status $rc"
	{ printf '%s\n' "$out"; log_since_marker | tail -n 30; } | diag
	stage_end insmod
	for st in stress rmmod reload; do
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
