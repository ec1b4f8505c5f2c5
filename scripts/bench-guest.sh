#!/usr/bin/env bash
# What `make bench` runs inside the VM (as root).  Started by scripts/bench.sh
# through scripts/vm.sh; the host's filesystem is visible read-only at the same
# paths, /tmp is writable.
#
# Usage: scripts/bench-guest.sh REPO KODIR ITEMS REPEATS TEST_WORKQUEUE_KO
#
# Loads KODIR/rust_wq.ko (built for the booted kernel), then REPEATS times, alternating which side goes first
# (C first on odd repeats):
#   ops     every operation of the per-operation table (OP_ROWS below): Rust
#           through `wqctl bench --op OP --path PATH`, the C twin
#           (KODIR/rust_wq_ctwin.ko) with all rows in one insmod;
#   scopes  per affinity scope of the unbound sysfs queue: the kernel's own
#           lib/test_workqueue.c (insmod TEST_WORKQUEUE_KO, all scopes in one
#           load), and "rt" (item reused) and "queue-fresh" (new item every
#           round, test_workqueue's method) from Rust and from the C twin;
#   tput    "rt" on the per-CPU queue with 1, 2 and 4 threads, Rust and twin
#           (throughput: guest instructions per completed item under icount).
# Finally unloads the module and scans the kernel log since the marker.
#
# Output (stdout), one record a line, for scripts/bench-report.py:
#   RWQ-BENCH {json}          one measurement; "impl" is "rust", "ctwin" (the
#                             C twin) or "c" (lib/test_workqueue.c); "set" is
#                             "ops", "scopes" or "tput"
#   RWQ-BENCH-FAIL text       a run that failed (the exit status is then 1)
#   RWQ-BENCH-DMESG text      the kernel log since the marker
#   RWQ-BENCH-SCAN ok|fail    the result of scripts/dmesg-scan.sh
#   RWQ-BENCH-DONE STATUS     last line
# Everything else is informational.
#
# Environment: RUST_WQ_BENCH_RUN_TIMEOUT  seconds allowed to each insmod or
# wqctl run, by the guest clock (default: 60 + 60 s per 1000 items).
# RUST_WQ_BENCH_SETS: which sets to run (default "ops scopes tput").
set -uo pipefail

repo="${1:?usage: bench-guest.sh REPO KODIR ITEMS REPEATS TEST_WORKQUEUE_KO}"
kodir="${2:?kodir}"
items="${3:?items}"
repeats="${4:?repeats}"
c_ko="${5:?test_workqueue.ko}"
ko="$kodir/rust_wq.ko"
twin_ko="$kodir/rust_wq_ctwin.ko"
wqctl="$repo/wqctl/target/release/wqctl"
export PATH="/usr/sbin:/sbin:/usr/bin:/bin:$PATH"
run_timeout="${RUST_WQ_BENCH_RUN_TIMEOUT:-$((60 + 60 * ((items + 999) / 1000)))}"
sets="${RUST_WQ_BENCH_SETS:-ops scopes tput}"
scopes=(cpu smt cache_shard cache numa system)
# The per-operation table: OP:PATH, single thread (queue-fresh: one thread too).
OP_ROWS=(
	queue:percpu queue:system-percpu queue-fresh:percpu queue-on:percpu
	delayed:system-percpu delayed:percpu mod-delayed:system-percpu mod-delayed:percpu
	cancel-idle:percpu cancel-armed:system-percpu cancel-armed:percpu
	cancel-sync-idle:percpu cancel-sync-armed:system-percpu cancel-sync-armed:percpu
	flush-idle:percpu disable:percpu enable:percpu static:system-percpu
)
TPUT_THREADS=(1 2 4)

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

# Loads a module that runs at init and refuses to stay (EAGAIN); $1 is a label,
# the rest the insmod arguments.  Sets `lines` to the kernel log of the load.
lines=""
load_eagain() {
	[ -z "$stuck" ] || return 1
	local label=$1 m rc=0 out
	shift
	m="rust_wq-bench-load-marker $(date +%s%N)"
	echo "$m" >/dev/kmsg
	run_limited insmod "$@" || rc=$?
	out="$(cat /tmp/bench-run.out)"
	lines="$(log_since "$m")"
	if [ $rc -eq 124 ]; then
		fail "$label: insmod $* timed out after $run_timeout s (guest clock)"
		return 1
	fi
	if [ $rc -eq 0 ]; then
		fail "$label: insmod $* stayed loaded (expected EAGAIN)"
		rmmod "$(basename "${1%.ko}")" 2>/dev/null
		return 1
	fi
	if ! grep -qiE 'Resource temporarily unavailable|Try again' <<<"$out"; then
		fail "$label: insmod $* failed with something else than EAGAIN: $out"
		grep -E 'rust_wq_ctwin|test_workqueue' <<<"$lines" | sed 's/^/RWQ-BENCH-FAIL   /'
		return 1
	fi
	return 0
}

# The C twin with runs $3 (and extra insmod arguments after it): repeat $1,
# set $2.  One record per "rust_wq_ctwin: run" line; the run count must match.
run_twin() {
	local rep=$1 set=$2 runs=$3 want n=0 op path threads its p50 p90 p95 p99 el scope=null
	shift 3
	for a in "$@"; do case "$a" in scope=*) scope="\"${a#scope=}\"" ;; esac; done
	load_eagain "ctwin rep $rep $set" "$twin_ko" "items=$items" "runs=$runs" "$@" || return
	want=$(tr ',' '\n' <<<"$runs" | grep -c .)
	while read -r op path threads its p50 p90 p95 p99 el; do
		[ -n "$op" ] || continue
		printf 'RWQ-BENCH {"impl":"ctwin","set":"%s","rep":%d,"order":"%s","op":"%s","path":"%s","scope":%s,"threads":%s,"items":%s,"queue_p50_ns":%s,"queue_p90_ns":%s,"queue_p95_ns":%s,"queue_p99_ns":%s,"elapsed_ns":%s}\n' \
			"$set" "$rep" "$order" "$op" "$path" "$scope" "$threads" "$its" "$p50" "$p90" "$p95" "$p99" "$el"
		n=$((n + 1))
	done < <(sed -nE 's/^rust_wq_ctwin: run op=([a-z-]+) queue=([a-z-]+) threads=([0-9]+) items=([0-9]+) p50=([0-9]+) p90=([0-9]+) p95=([0-9]+) p99=([0-9]+) elapsed_ns=([0-9]+).*/\1 \2 \3 \4 \5 \6 \7 \8 \9/p' <<<"$lines")
	[ $n -eq "$want" ] || fail "ctwin rep $rep $set: $n run lines in dmesg, expected $want"
}

# lib/test_workqueue.c: repeat $1; one record per scope line.
run_c() {
	local rep=$1 threads n=0 s ips p50 p90 p95
	load_eagain "c rep $rep" "$c_ko" "wq_items=$items" || return
	threads="$(sed -nE 's/^test_workqueue: running ([0-9]+) threads.*/\1/p' <<<"$lines" | head -n1)"
	while read -r s ips p50 p90 p95; do
		[ -n "$s" ] || continue
		printf 'RWQ-BENCH {"impl":"c","set":"scopes","rep":%d,"order":"%s","op":"queue-fresh","path":"unbound-sysfs","scope":"%s","items":%d,"threads":%s,"items_per_sec":%s,"queue_p50_ns":%s,"queue_p90_ns":%s,"queue_p95_ns":%s}\n' \
			"$rep" "$order" "$s" "$items" "${threads:-null}" "$ips" "$p50" "$p90" "$p95"
		n=$((n + 1))
	done < <(sed -nE 's/^test_workqueue: +([a-z_]+) +([0-9]+) items\/sec[[:space:]]+p50=([0-9]+)[[:space:]]+p90=([0-9]+)[[:space:]]+p95=([0-9]+) ns.*/\1 \2 \3 \4 \5/p' <<<"$lines")
	[ $n -eq ${#scopes[@]} ] || fail "c rep $rep: found $n scope lines in dmesg, expected ${#scopes[@]}"
}

# One Rust run: repeat $1, set $2, then wqctl bench arguments.
run_rust() {
	[ -z "$stuck" ] || return 0
	local rep=$1 set=$2 out rc=0
	shift 2
	run_limited "$wqctl" bench --items "$items" --json "$@" || rc=$?
	out="$(cat /tmp/bench-run.out)"
	if [ $rc -eq 124 ]; then
		fail "rust rep $rep: wqctl bench --items $items $* timed out after $run_timeout s (guest clock)"
		return
	elif [ $rc -ne 0 ]; then
		fail "rust rep $rep: wqctl bench $*: status $rc${out:+: $out}"
		return
	fi
	case "$out" in
	'{'*'}') printf 'RWQ-BENCH {"impl":"rust","set":"%s","rep":%d,"order":"%s",%s\n' "$set" "$rep" "$order" "${out#\{}" ;;
	*) fail "rust rep $rep: wqctl bench $*: unexpected output: $out" ;;
	esac
}

ops_rust() {
	local row
	for row in "${OP_ROWS[@]}"; do
		run_rust "$1" ops --op "${row%%:*}" --path "${row#*:}" --threads 1
	done
}
ops_twin() { run_twin "$1" ops "$(IFS=,; echo "${OP_ROWS[*]}")"; }

scopes_rust() {
	local s
	for s in "${scopes[@]}"; do
		run_rust "$1" scopes --op rt --path unbound-sysfs --scope "$s"
		run_rust "$1" scopes --op queue-fresh --path unbound-sysfs --scope "$s"
	done
}
scopes_c() {
	local s
	run_c "$1"
	for s in "${scopes[@]}"; do
		run_twin "$1" scopes "rt:unbound-sysfs:0,queue-fresh:unbound-sysfs:0" "scope=$s"
	done
}

tput_runs() { # $1 rep, $2 rust|ctwin
	local t runs=""
	for t in "${TPUT_THREADS[@]}"; do
		[ "$t" -le "$(nproc)" ] || continue
		if [ "$2" = rust ]; then
			run_rust "$1" tput --op rt --path percpu --threads "$t"
		else
			runs+="${runs:+,}rt:percpu:$t"
		fi
	done
	[ "$2" = rust ] || run_twin "$1" tput "$runs"
}

[ -f "$ko" ] || { fail "module $ko not found (make module)"; finish; }
[ -f "$twin_ko" ] || { fail "module $twin_ko not found (make module)"; finish; }
[ -x "$wqctl" ] || { fail "$wqctl not found (make user)"; finish; }
[ -f "$c_ko" ] || { fail "$c_ko not found (CONFIG_TEST_WORKQUEUE=m in the kernel?)"; finish; }

info "items=$items repeats=$repeats sets='$sets' run_timeout=${run_timeout}s cpus=$(nproc) $(uname -r)"
echo "RWQ-BENCH-KERNEL $(uname -r) $( [ -e /proc/lockdep ] && echo debug || echo release)"
echo "$marker" >/dev/kmsg
if ! out="$(insmod "$ko" 2>&1)"; then
	fail "insmod $ko: $out"
	finish
fi
for _ in $(seq 50); do [ -c /dev/rust_wq ] && break; sleep 0.1; done
[ -c /dev/rust_wq ] || fail "/dev/rust_wq did not appear"

if [ $failed -eq 0 ]; then
	for rep in $(seq "$repeats"); do
		for set in $sets; do
			info "repeat $rep: $set"
			if [ $((rep % 2)) -eq 1 ]; then order=c-first; else order=rust-first; fi
			case "$set" in
			ops)
				if [ $order = c-first ]; then ops_twin "$rep"; ops_rust "$rep"
				else ops_rust "$rep"; ops_twin "$rep"; fi ;;
			scopes)
				if [ $order = c-first ]; then scopes_c "$rep"; scopes_rust "$rep"
				else scopes_rust "$rep"; scopes_c "$rep"; fi ;;
			tput)
				if [ $order = c-first ]; then tput_runs "$rep" ctwin; tput_runs "$rep" rust
				else tput_runs "$rep" rust; tput_runs "$rep" ctwin; fi ;;
			*) fail "unknown set $set" ;;
			esac
		done
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
