#!/usr/bin/env bash
# What `make bench` runs inside the test VM (as root).  Started by
# scripts/bench.sh through scripts/vm.sh; the host's filesystem is visible
# read-only at the same paths, /tmp is writable.
#
# Usage: scripts/bench-guest.sh REPO ITEMS REPEATS TEST_WORKQUEUE_KO
#
# Loads REPO/rust_wq.ko, then REPEATS times the pair
#   C     insmod TEST_WORKQUEUE_KO wq_items=ITEMS (refuses to load with EAGAIN
#         after printing one dmesg line per affinity scope)
#   Rust  wqctl bench --path unbound-sysfs --scope S --items ITEMS, each scope S
# with C first on odd repeats and Rust first on even ones; then REPEATS rounds
# of the Rust-only paths: percpu, system-percpu, and the three paths with
# --start-latency (unbound-sysfs with scope cache, the kernel's default).
# Finally unloads the module and scans the kernel log since the marker.
#
# Output (stdout), one record a line, for scripts/bench.sh:
#   RWQ-BENCH {json}          one measurement ("impl": "c" or "rust")
#   RWQ-BENCH-FAIL text       a run that failed (the exit status is then 1)
#   RWQ-BENCH-DMESG text      the kernel log since the marker
#   RWQ-BENCH-SCAN ok|fail    the result of scripts/dmesg-scan.sh
#   RWQ-BENCH-DONE STATUS     last line
# Everything else is informational.
#
# Environment: RUST_WQ_BENCH_RUN_TIMEOUT  seconds allowed to each insmod or
# wqctl run, by the guest clock (default: 60 + 30 s per 1000 items; under
# icount the guest clock runs several times slower than the wall clock).
set -uo pipefail

repo="${1:?usage: bench-guest.sh REPO ITEMS REPEATS TEST_WORKQUEUE_KO}"
items="${2:?items}"
repeats="${3:?repeats}"
c_ko="${4:?test_workqueue.ko}"
ko="$repo/rust_wq.ko"
wqctl="$repo/wqctl/target/release/wqctl"
export PATH="/usr/sbin:/sbin:/usr/bin:/bin:$PATH"
run_timeout="${RUST_WQ_BENCH_RUN_TIMEOUT:-$((60 + 30 * ((items + 999) / 1000)))}"
scopes=(cpu smt cache_shard cache numa system)

failed=0
marker="rust_wq-bench-marker $(date +%s%N)"

info() { printf '[bench-guest] %s\n' "$*"; }
fail() {
	printf 'RWQ-BENCH-FAIL %s\n' "$*"
	failed=1
}
finish() {
	printf 'RWQ-BENCH-DONE %s\n' "$failed"
	exit "$failed"
}

# Kernel log after marker $1 (timestamps stripped).
log_since() {
	dmesg 2>/dev/null | sed -E 's/^(<[0-9]+>)?\[ *[0-9]+\.[0-9]+\] ?//; s/\\x09/\t/g' |
		awk -v m="$1" 'index($0, m) { found = 1; next } found { print }'
}

# Runs a command with its output in /tmp/bench-run.out, allowed $run_timeout
# seconds.  Returns its status, or 124 when it had to be killed.  A process
# stuck in the kernel (uninterruptible sleep) cannot be killed, and waiting for
# it would hang the guest until the VM timeout: then the stack of the stuck
# process and of every blocked task is logged, `stuck` is set and every later
# run is skipped, so that the kernel log still comes back.
# (`timeout` is not used: it waits for its child forever.)
stuck=""
run_limited() {
	local pid wd rc=0
	"$@" >/tmp/bench-run.out 2>&1 &
	pid=$!
	(
		sleep "$run_timeout"
		kill -TERM "$pid" 2>/dev/null
		sleep 5
		kill -KILL "$pid" 2>/dev/null
		sleep 5
		kill -USR1 $$ 2>/dev/null
	) &
	wd=$!
	woke=0
	trap 'woke=1' USR1
	wait "$pid" || rc=$?
	trap - USR1
	kill "$wd" 2>/dev/null
	wait "$wd" 2>/dev/null
	if [ $woke -eq 1 ] && kill -0 "$pid" 2>/dev/null; then
		stuck="$pid"
		printf 'RWQ-BENCH-FAIL stuck after SIGKILL: %s (pid %s, state %s)\n' "$*" "$pid" \
			"$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
		sed 's/^/RWQ-BENCH-FAIL   stack: /' "/proc/$pid/stack" 2>/dev/null
		for t in /proc/[0-9]*; do
			case "$(awk '/^State:/ { print $2 }' "$t/status" 2>/dev/null)" in
			D) printf 'RWQ-BENCH-FAIL   blocked task %s (%s):\n' "${t#/proc/}" "$(cat "$t/comm" 2>/dev/null)"
			   sed 's/^/RWQ-BENCH-FAIL     /' "$t/stack" 2>/dev/null ;;
			esac
		done
		[ -w /proc/sysrq-trigger ] && echo w >/proc/sysrq-trigger 2>/dev/null
		return 124
	fi
	case $rc in 143 | 137) return 124 ;; esac
	return $rc
}

# One C run: repeat number $1.
run_c() {
	[ -z "$stuck" ] || return 0
	local rep=$1 m out rc=0 lines threads t0 t1
	m="rust_wq-bench-c-marker $rep $(date +%s%N)"
	echo "$m" >/dev/kmsg
	t0=$(date +%s%N)
	run_limited insmod "$c_ko" "wq_items=$items" || rc=$?
	t1=$(date +%s%N)
	out="$(cat /tmp/bench-run.out)"
	info "C repeat $rep: insmod status $rc in $(((t1 - t0) / 1000000)) ms (guest clock): $out"
	if [ $rc -eq 124 ]; then
		fail "c rep $rep: insmod test_workqueue.ko wq_items=$items timed out after $run_timeout s (guest clock)"
		return
	fi
	if [ $rc -eq 0 ]; then
		fail "c rep $rep: test_workqueue.ko loaded (expected EAGAIN)"
		rmmod test_workqueue 2>/dev/null
	elif ! grep -qiE 'Resource temporarily unavailable|Try again' <<<"$out"; then
		fail "c rep $rep: insmod failed with something else than EAGAIN: $out"
		return
	fi
	lines="$(log_since "$m")"
	threads="$(sed -nE 's/^test_workqueue: running ([0-9]+) threads.*/\1/p' <<<"$lines" | head -n1)"
	local n=0 s ips p50 p90 p95
	while IFS=$'\t ' read -r s ips p50 p90 p95; do
		[ -n "$s" ] || continue
		printf 'RWQ-BENCH {"impl":"c","rep":%d,"order":"%s","path":"unbound-sysfs","scope":"%s","items":%d,"threads":%s,"items_per_sec":%s,"queue_p50_ns":%s,"queue_p90_ns":%s,"queue_p95_ns":%s}\n' \
			"$rep" "$order" "$s" "$items" "${threads:-null}" "$ips" "$p50" "$p90" "$p95"
		n=$((n + 1))
	done < <(sed -nE 's/^test_workqueue: +([a-z_]+) +([0-9]+) items\/sec[[:space:]]+p50=([0-9]+)[[:space:]]+p90=([0-9]+)[[:space:]]+p95=([0-9]+) ns.*/\1 \2 \3 \4 \5/p' <<<"$lines")
	[ $n -eq ${#scopes[@]} ] ||
		fail "c rep $rep: found $n scope lines in dmesg, expected ${#scopes[@]}"
}

# One Rust run: repeat $1, then wqctl bench arguments.
run_rust() {
	[ -z "$stuck" ] || return 0
	local rep=$1 out rc=0 t0 t1
	shift
	t0=$(date +%s%N)
	run_limited "$wqctl" bench --items "$items" --json "$@" || rc=$?
	t1=$(date +%s%N)
	out="$(cat /tmp/bench-run.out)"
	info "Rust repeat $rep: wqctl bench $* -> status $rc in $(((t1 - t0) / 1000000)) ms (guest clock)"
	if [ $rc -eq 124 ]; then
		fail "rust rep $rep: wqctl bench --items $items $* timed out after $run_timeout s (guest clock)"
		return
	elif [ $rc -ne 0 ]; then
		fail "rust rep $rep: wqctl bench $*: status $rc${out:+: $out}"
		return
	fi
	case "$out" in
	'{'*'}') printf 'RWQ-BENCH {"impl":"rust","rep":%d,"order":"%s",%s\n' "$rep" "$order" "${out#\{}" ;;
	*) fail "rust rep $rep: wqctl bench $*: unexpected output: $out" ;;
	esac
}

run_rust_scopes() {
	local s
	for s in "${scopes[@]}"; do
		run_rust "$1" --path unbound-sysfs --scope "$s"
	done
}

[ -f "$ko" ] || { fail "module $ko not found (make module)"; finish; }
[ -x "$wqctl" ] || { fail "$wqctl not found (make user)"; finish; }
[ -f "$c_ko" ] || { fail "$c_ko not found (CONFIG_TEST_WORKQUEUE=m in the cached kernel?)"; finish; }

info "items=$items repeats=$repeats run_timeout=${run_timeout}s cpus=$(nproc) $(uname -r)"
info "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
echo "$marker" >/dev/kmsg
if ! out="$(insmod "$ko" 2>&1)"; then
	fail "insmod $ko: $out"
	finish
fi
for _ in $(seq 50); do [ -c /dev/rust_wq ] && break; sleep 0.1; done
[ -c /dev/rust_wq ] || fail "/dev/rust_wq did not appear"
[ -w /sys/bus/workqueue/devices/rust_wq_bench/affinity_scope ] ||
	fail "/sys/bus/workqueue/devices/rust_wq_bench/affinity_scope missing"
info "rust_wq_bench default affinity scope: $(cat /sys/bus/workqueue/devices/rust_wq_bench/affinity_scope 2>/dev/null)"

if [ $failed -eq 0 ]; then
	for rep in $(seq "$repeats"); do
		if [ $((rep % 2)) -eq 1 ]; then
			order=c-first
			run_c "$rep"
			run_rust_scopes "$rep"
		else
			order=rust-first
			run_rust_scopes "$rep"
			run_c "$rep"
		fi
	done
	order=rust-only
	for rep in $(seq "$repeats"); do
		run_rust "$rep" --path percpu
		run_rust "$rep" --path system-percpu
		run_rust "$rep" --path unbound-sysfs --scope cache --start-latency
		run_rust "$rep" --path percpu --start-latency
		run_rust "$rep" --path system-percpu --start-latency
	done
fi

if [ -n "$stuck" ]; then
	fail "a run is stuck in the kernel: remaining runs and rmmod rust_wq skipped"
elif ! out="$(rmmod rust_wq 2>&1)"; then
	fail "rmmod rust_wq: $out"
fi
log="$(log_since "$marker")"
sed 's/^/RWQ-BENCH-DMESG /' <<<"$log"
if hits="$(bash "$repo/scripts/dmesg-scan.sh" <<<"$log")"; then
	echo "RWQ-BENCH-SCAN ok"
else
	echo "RWQ-BENCH-SCAN fail"
	sed 's/^/RWQ-BENCH-FAIL kernel log: /' <<<"$hits"
	failed=1
fi
finish
