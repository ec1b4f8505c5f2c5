#!/usr/bin/env bash
# `make check`: every test of rust_wq, reported as one KTAP document.
#
#   1. setup (idempotent; with a user-given KDIR only the tools)
#   2. builds: module, wqctl (release), build/abi_check
#   3. lints: rustfmt and clippy for the module, cargo fmt and cargo clippy
#   4. host tests: `cargo test` of wqctl, one result per test; the harness's
#      self-tests (scripts/harness-selftest.sh)
#   5. one VM boot running scripts/guest.sh check: setup checks of the log
#      scan, insmod (+ the module's KUnit cases), build/abi_check,
#      rust_wq_e2e, the short stress scenarios, rmmod_clean, reload cycles,
#      kmemleak_clean, dmesg_clean, taint_clean, lockdep_still_on.  The VM is
#      booted only when every build step passed (never on stale artefacts).
#      The guest's stages and result counts are checked (scripts/lib.sh
#      guest_report): a result cannot vanish on the way.
#
# Progress goes to stderr as "# ..." lines; the KTAP report (version, plan,
# renumbered results with "# " diagnostics under failures) goes to stdout at
# the end, followed by one line "N passed, N failed, N skipped".  A skip is
# never a pass; a skip of a debug feature the kernel is configured with
# (kmemleak, failslab, CPU hotplug, lockdep, slub_debug, debugfs: RUST_WQ_REQUIRE
# from scripts/lib.sh required_features) is a failure.  Exit status 1 when
# anything failed.  Logs of every step: results/check/ (the report:
# results/check/check.ktap).
#
# Environment: KDIR, KDIR_GIVEN (from the Makefile); RUST_WQ_CHECK_VM_TIMEOUT
# (seconds for the VM run, default 600).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set +e

cd "$RUST_WQ_ROOT"
KDIR="${KDIR:-$KBUILD_DIR_DEFAULT}"
RES="$RUST_WQ_ROOT/results/check"
rm -rf "$RES"
mkdir -p "$RES"
REPORT="$RES/report.tmp"
: >"$REPORT"
start=$SECONDS

progress() { printf '# [%3ds] %s\n' "$((SECONDS - start))" "$*" >&2; }

# add ok|"not ok" NAME [DIRECTIVE]
add() { printf '%s %s%s\n' "$1" "$2" "${3:+ # $3}" >>"$REPORT"; }
# add_diag: stdin lines as diagnostics of the last result (at most 60).
add_diag() { head -n 60 | sed 's/^/# /' >>"$REPORT"; }

mk() { make --no-print-directory -C "$RUST_WQ_ROOT" NO_SETUP=1 KDIR="$KDIR" RUSTFMT_COLOR=never "$@"; }

# excerpt LOG: from the first error/warning line on (50 lines), then the end.
excerpt() {
	awk -v n="$(wc -l <"$1")" '
		{ line[NR] = $0 }
		!f && /error|warning:|Error|FAILED|panicked|Diff in/ { f = NR }
		END {
			if (!f || n - f < 60) { s = (f && f < n - 59) ? f : (n > 60 ? n - 59 : 1); for (i = s; i <= n; i++) print line[i]; exit }
			for (i = f; i < f + 50; i++) print line[i]
			print "[...]"
			for (i = n - 7; i <= n; i++) print line[i]
		}' "$1"
}

# step NAME LOGNAME make-targets...: one test whose status is the make status.
step() {
	local name="$1" logf="$RES/$2.log"
	shift 2
	progress "$name"
	if mk "$@" >"$logf" 2>&1; then
		add ok "$name"
		return 0
	fi
	add "not ok" "$name"
	excerpt "$logf" | add_diag
	return 1
}

# --- 1. setup -------------------------------------------------------------
progress "setup"
if [ -n "${KDIR_GIVEN:-}" ]; then setup_what=deps; else setup_what=all; fi
if bash scripts/setup.sh "$setup_what" >"$RES/setup.log"; then
	add ok setup
else
	add "not ok" setup
	tail -n 20 "$RES/setup.log" | add_diag
fi

# --- 2. builds --------------------------------------------------------------
# Clippy first: it compiles the module with clippy-driver; the module build
# right after recompiles it with rustc (what gets loaded).
build_ok=1
step lint.clippy_kernel clippy-kernel lint-clippy
step build.module module module || build_ok=0
step build.compile_fail compile-fail compile-fail || build_ok=0 # rejected builder/queue combinations (tests/compile_fail/)
step build.wqctl wqctl wqctl || build_ok=0
step build.abi_check abi-check abi-check || build_ok=0

# --- 3. lints ----------------------------------------------------------------
step lint.rustfmt rustfmt lint-rustfmt
step lint.cargo_fmt cargo-fmt lint-cargo-fmt
step lint.cargo_clippy cargo-clippy lint-cargo-clippy

# --- 4. host tests -------------------------------------------------------------
progress "cargo test (wqctl)"
mk test-host >"$RES/cargo-test.log" 2>&1
cargo_rc=$?
awk -v rc="$cargo_rc" '
	function flushdiag(name,   i, n) {
		n = 0
		for (i = 1; i <= nout[name]; i++) { print "# " out[name, i]; if (++n >= 40) break }
	}
	/^ *Running / {
		bin = $0; sub(/.*\//, "", bin); sub(/\).*/, "", bin); sub(/-[0-9a-f]+$/, "", bin); next
	}
	/^ *Doc-tests / { bin = "doc." $2; next }
	/^test .* \.\.\. / {
		name = $0; sub(/^test /, "", name); st = name
		sub(/ \.\.\. .*$/, "", name); sub(/^.* \.\.\. /, "", st)
		gsub(/ /, "_", name)
		full = "cargo_test." (bin == "" ? "" : bin ".") name
		n++; order[n] = full; status[full] = st; short[full] = name
		next
	}
	/^---- .* stdout ----$/ { cur = $2; next }
	/^(failures|successes):$/ { cur = ""; next }
	cur != "" { for (k in short) if (short[k] == cur) { nout[k]++; out[k, nout[k]] = $0 } }
	END {
		nfail = 0
		for (i = 1; i <= n; i++) {
			f = order[i]; st = status[f]
			if (st == "ok") print "ok " f
			else if (st ~ /^ignored/) { r = st; sub(/^ignored,? ?/, "", r); print "ok " f " # SKIP ignored" (r != "" ? ": " r : "") }
			else { print "not ok " f; flushdiag(f); nfail++ }
		}
		if (rc != 0 && nfail == 0) print "not ok cargo_test # cargo test failed (status " rc ")"
		else if (n == 0) print "not ok cargo_test # no host tests found in the cargo test output"
	}' "$RES/cargo-test.log" >>"$REPORT"
if [ $cargo_rc -ne 0 ] && ! grep -q '^test .* \.\.\. FAILED' "$RES/cargo-test.log"; then
	excerpt "$RES/cargo-test.log" | add_diag
fi

# Self-tests of the harness's fail-closed logic (report, plan and stage
# checks, log scan).
progress "harness self-tests"
bash scripts/harness-selftest.sh >>"$REPORT" 2>"$RES/harness-selftest.log"

# --- 5. the VM ---------------------------------------------------------------
guest_stages="setup insmod kunit abi_check e2e stress rmmod reload kmemleak kernel_log"
if [ $build_ok = 0 ]; then
	# The VM would run the binaries of an earlier build.
	add "not ok" vm_run "not booted: a build step failed, the VM would test stale artefacts"
elif [ -f "$KDIR/arch/x86/boot/bzImage" ]; then
	vm_timeout="${RUST_WQ_CHECK_VM_TIMEOUT:-600}"
	require="$(required_features "$KDIR")"
	kargs="$(vm_kernel_args "$KDIR")"
	progress "VM: booting $KDIR (timeout ${vm_timeout} s; required: ${require:-none}; kernel args: ${kargs:-none}; log: results/check/vm.log)"
	vm_start=$SECONDS
	RUST_WQ_REQUIRE="$require" bash scripts/vm.sh --kdir "$KDIR" --timeout "$vm_timeout" \
		--append "$kargs" -- \
		"bash $RUST_WQ_ROOT/scripts/guest.sh check $RUST_WQ_ROOT" >"$RES/vm.log" 2>&1
	vm_rc=$?
	progress "VM: finished in $((SECONDS - vm_start)) s (status $vm_rc)"
	# RWQ-RESULT / RWQ-DIAG lines -> report lines; stage and done counts checked.
	guest_report "$guest_stages" <"$RES/vm.log" >>"$REPORT"
	if ! grep -q '^RWQ-DONE' "$RES/vm.log"; then
		case $vm_rc in
		124) why="the VM timed out after ${vm_timeout} s" ;;
		255) why="the guest died without an exit status (kernel panic?)" ;;
		*) why="the guest did not finish (status $vm_rc)" ;;
		esac
		add "not ok" vm_run "$why"
		grep -v '^RWQ-' "$RES/vm.log" | tail -n 40 | add_diag
	elif [ $vm_rc -ne 0 ]; then
		add "not ok" vm_run "vm.sh exited with status $vm_rc"
		grep -v '^RWQ-' "$RES/vm.log" | tail -n 20 | add_diag
	fi
else
	add "not ok" vm_run "no kernel image in $KDIR"
fi

# --- report ------------------------------------------------------------------
progress "done in $((SECONDS - start)) s"
ktap_report <"$REPORT" >"$RES/check.ktap"
rm -f "$REPORT"
cat "$RES/check.ktap"
# Exit status: 0 only when nothing failed.
[ "$(grep -c '^not ok ' "$RES/check.ktap")" -eq 0 ]
