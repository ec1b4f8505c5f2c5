#!/usr/bin/env bash
# `make stress`: the long reliability scenarios of rust_wq in ONE VM boot,
# reported as KTAP (stdout) followed by "N passed, N failed, N skipped".
#
#   In the VM (scripts/stress-guest.sh): insmod, rust_wq_stress --long
#   (permissions, fuzz >= 100k calls, concurrency, failslab, hotplug), rmmod,
#   rust_wq_stress --long --kmemleak reload (>= 50 cycles), kmemleak_clean,
#   dmesg_clean, taint_clean, lockdep_still_on.  Each scenario's counts are
#   kept as diagnostics.  Every stage of the guest must report, with as many
#   results as it printed (scripts/lib.sh guest_report).
#
# Expects the module and wqctl to be built (`make stress` builds them).
# Progress goes to stderr; logs: results/stress-vm.log, results/stress.ktap.
# Exit status 1 when anything failed.
#
# Environment: KDIR; RUST_WQ_STRESS_VM_TIMEOUT (seconds, default 1500);
# RUST_WQ_STRESS_SEED (replay a run: the seed is printed in the report);
# RUST_WQ_STRESS_MODE=short (the make-check lengths, for a quick try);
# RUST_WQ_STRESS_SCENARIOS (subset of: permissions fuzz concurrency failslab
# hotplug; reload always runs).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set +e

cd "$RUST_WQ_ROOT"
KDIR="${KDIR:-$KBUILD_DIR_DEFAULT}"
RES="$RUST_WQ_ROOT/results"
mkdir -p "$RES"
# The logs are written outside results/ while the VM runs (a concurrent
# `make check` empties results/) and copied there at the end.
LOG="$(mktemp /tmp/rust_wq-stress-vm.XXXXXX)"
KTAP="$(mktemp /tmp/rust_wq-stress-ktap.XXXXXX)"
trap 'mkdir -p "$RES"; cp "$LOG" "$RES/stress-vm.log"; cp "$KTAP" "$RES/stress.ktap"; rm -f "$LOG" "$KTAP"' EXIT
start=$SECONDS
progress() { printf '# [%4ds] %s\n' "$((SECONDS - start))" "$*" >&2; }

for f in rust_wq.ko wqctl/target/release/rust_wq_stress; do
	[ -e "$f" ] || { echo "stress: $f missing (run 'make stress', which builds it)" >&2; exit 1; }
done
[ -f "$KDIR/arch/x86/boot/bzImage" ] || { echo "stress: no kernel image in $KDIR (make setup)" >&2; exit 1; }

vm_timeout="${RUST_WQ_STRESS_VM_TIMEOUT:-1500}"
progress "VM: booting $KDIR for the long stress run (timeout ${vm_timeout} s; log: results/stress-vm.log)"
# Progress of the guest, live: the scenario results as they come.
RUST_WQ_REQUIRE="$(required_features "$KDIR")" \
	bash scripts/vm.sh --kdir "$KDIR" --timeout "$vm_timeout" \
	--append "$(vm_kernel_args "$KDIR")" \
	-- "bash $RUST_WQ_ROOT/scripts/stress-guest.sh $RUST_WQ_ROOT" 2>&1 |
	tee "$LOG" | while IFS= read -r l; do
		case "$l" in
		'[guest]   ok '* | '[guest]   not ok '* | '[guest] running '* | RWQ-RESULT*)
			progress "${l#\[guest\]   }" ;;
		esac
	done
vm_rc=${PIPESTATUS[0]}
progress "VM: finished (status $vm_rc)"

{
	guest_report "setup insmod stress rmmod reload kmemleak kernel_log" <"$LOG"
	if ! grep -q '^RWQ-DONE' "$LOG"; then
		case $vm_rc in
		124) why="the VM timed out after ${vm_timeout} s" ;;
		255) why="the guest died without an exit status (kernel panic?)" ;;
		*) why="the guest did not finish (status $vm_rc)" ;;
		esac
		echo "not ok vm_run # $why"
		grep -v '^RWQ-' "$LOG" | tail -n 40 | sed 's/^/# /'
	elif [ "$vm_rc" -ne 0 ]; then
		echo "not ok vm_run # vm.sh exited with status $vm_rc"
	fi
} | ktap_report "# stress run: $((SECONDS - start)) s" >"$KTAP"
cat "$KTAP"
[ "$(grep -c '^not ok ' "$KTAP")" -eq 0 ] && [ "$(grep -c '^ok ' "$KTAP")" -gt 0 ]
