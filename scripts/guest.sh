#!/usr/bin/env bash
# What runs inside the test VM (as root).  Started by scripts/check.sh and
# scripts/run.sh through scripts/vm.sh; the host's filesystem is visible
# read-only at the same paths.
#
# Usage: scripts/guest.sh check|run|lib [REPO]
#
#   check  load the module (its KUnit suite runs at insmod), run
#          build/abi_check and wqctl/target/release/rust_wq_e2e, unload,
#          check kmemleak and the kernel log.  Prints one line per result:
#            RWQ-RESULT ok NAME [# directive]   /   RWQ-RESULT not ok NAME
#            RWQ-DIAG text                      (details of the last result)
#          and RWQ-DONE at the very end; scripts/check.sh renumbers these
#          into the final KTAP report.  Everything else is informational.
#          After rust_wq_e2e, the short stress scenarios run
#          (wqctl/target/release/rust_wq_stress: fuzz, concurrency, failslab,
#          hotplug, permissions with the module loaded; reload after rmmod).
#   run    load the module, run `wqctl demo`, print the kernel log from the
#          marker on, unload; exit 0 on success.
#   lib    define the functions only (sourced by scripts/stress-guest.sh).
#
# Environment (all optional):
#   RUST_WQ_KO       module to load (default REPO/rust_wq.ko); also exported to
#                    rust_wq_e2e, which must leave the module loaded when done
#   RUST_WQ_INSMOD_ARGS  module parameters for insmod
#   RUST_WQ_TEST_TIMEOUT seconds allowed to each test binary (default 180)
#   RUST_WQ_STRESS_SEED  seed for rust_wq_stress (default: a new one, printed)
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

result() { # result ok|"not ok" NAME [DIRECTIVE]
	printf 'RWQ-RESULT %s %s%s\n' "$1" "$2" "${3:+ # $3}"
}
diag() { # each line of "$*" (or of stdin with no arguments) as a diagnostic
	if [ $# -gt 0 ]; then printf '%s\n' "$*"; else cat; fi |
		sed -E 's/^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ?//; s/^/RWQ-DIAG /'
}
info() { printf '[guest] %s\n' "$*"; }

# Kernel log after the marker.
log_since_marker() {
	dmesg 2>/dev/null | awk -v m="$marker" 'index($0, m) { found = 1 } found { print }'
}

prepare() {
	mountpoint -q /sys/kernel/debug 2>/dev/null ||
		mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
	if [ -w "$kml" ]; then
		# Report, then forget, whatever boot left behind: only what leaks
		# after the marker must fail kmemleak_clean.
		echo scan >"$kml" 2>/dev/null
		echo clear >"$kml" 2>/dev/null
	fi
	echo "$marker" >/dev/kmsg
}

# KTAP (possibly nested, indented, timestamped) -> RWQ-RESULT lines for the
# leaf tests only.  A result line is a parent (skipped) when it closes a
# "# Subtest: NAME" block of the same name, or when the result line before it
# was indented deeper.  A failed parent with no failed leaf is reported too.
# Diagnostic lines seen since the previous result are attached to a failure.
# With checkplan=1, the first plan line ("1..N") is compared with the number
# of results at its indentation.  With keepdiag=1, passing tests keep their
# last 12 diagnostic lines too (the stress scenarios print their counts).
ktap_leaves() { # ktap_leaves PREFIX CHECKPLAN [KEEPDIAG]
	awk -v prefix="$1" -v checkplan="$2" -v keepdiag="${3:-0}" '
	function flush_diag(   i) { for (i = 1; i <= nb; i++) print "RWQ-DIAG " buf[i]; nb = 0 }
	{
		line = $0
		sub(/^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ?/, "", line)
		match(line, /^[ \t]*/); ind = RLENGTH; body = substr(line, ind + 1)
		sub(/[ \t\r]+$/, "", body)
		if (body ~ /^# Subtest: /) {
			sp++; stack[sp] = substr(body, 12); failsat[sp] = nfail; nb = 0; next
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
			if (plan_ind != "" && ind == plan_ind) nplanres++
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
			if (plan_ind == "") { plan_ind = ind; plan = body; sub(/^1\.\./, "", plan); plan += 0 }
			next
		}
		if (body ~ /^K?TAP version/ || body == "") next
		sub(/^# /, "", body)
		if (nb < 40) buf[++nb] = body
	}
	END {
		if (nleaf == 0) {
			print "RWQ-RESULT not ok " prefix " # no KTAP results found"
			flush_diag()
		} else if (checkplan && plan_ind != "" && nplanres != plan) {
			print "RWQ-RESULT not ok " prefix ".plan # planned " plan " tests, got " nplanres " results"
		}
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
	printf '%s\n' "$out" | ktap_leaves "$prefix" 1 "${KTAP_KEEPDIAG:-0}"
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
		result ok kmemleak_clean "SKIP kmemleak not available"
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
	hits="$(log_since_marker | "$repo/scripts/dmesg-scan.sh")" || rc=$?
	if [ $rc -eq 0 ]; then
		result ok dmesg_clean
	else
		result "not ok" dmesg_clean
		printf '%s\n' "$hits" | head -n 80 | diag
	fi
}

mode_check() {
	prepare
	local out rc=0
	info "insmod $ko ${RUST_WQ_INSMOD_ARGS:-}"
	out="$(do_insmod)" || rc=$?
	if [ $rc -eq 0 ]; then
		result ok insmod
		# KUnit ran synchronously during insmod: its KTAP is in the log now.
		log_since_marker | ktap_leaves kunit 0
	else
		result "not ok" insmod "insmod failed with status $rc"
		{ printf '%s\n' "$out"; log_since_marker | tail -n 30; } | diag
	fi

	run_ktap_binary abi_check "$repo/build/abi_check"
	local stress="$repo/wqctl/target/release/rust_wq_stress" seed=()
	[ -n "${RUST_WQ_STRESS_SEED:-}" ] && seed=(--seed "$RUST_WQ_STRESS_SEED")
	if [ $rc -eq 0 ]; then
		run_ktap_binary e2e "$repo/wqctl/target/release/rust_wq_e2e"
		# The short stress scenarios (each its own result, with its counts).
		KTAP_KEEPDIAG=1 run_ktap_binary stress "$stress" "${seed[@]}" \
			permissions fuzz concurrency failslab failnth hotplug
		info "rmmod $modname"
		if out="$(do_rmmod)"; then
			result ok rmmod_clean
			# Reload cycles need the module unloaded; they leave it so.
			KTAP_KEEPDIAG=1 run_ktap_binary stress "$stress" "${seed[@]}" reload
		else
			result "not ok" rmmod_clean
			printf '%s\n' "$out" | diag
		fi
	else
		info "module not loaded: skipping rust_wq_e2e and rmmod"
	fi
	check_kmemleak
	check_dmesg
	echo "RWQ-DONE"
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
		info "$wqctl demo"
		if ! timeout -k 5 "$test_timeout" "$wqctl" demo; then
			info "wqctl demo FAILED"
			fail=1
		fi
	fi
	info "kernel log since the marker:"
	log_since_marker | sed 's/^/  /'
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
