#!/usr/bin/env bash
# Self-tests of the harness's own fail-closed logic, run on the host by
# scripts/check.sh (results "harness.*"): each feeds a known-bad input to one
# piece of the harness and expects it to report the failure.
#
#   ktap_report      a SKIP is counted as skipped, never as passed
#   ktap_leaves      a nested plan that is short by one, a Bail out!, a result
#                    line it cannot parse, results without a plan
#   guest_report     a stage that never reported, a lost result, an unknown
#                    RWQ- line, a wrong done count
#   dmesg-scan.sh    a splat fails, a clean log passes, an invalid allow-list
#                    regex is an error (status 2), an allowed line is allowed
#
# Prints "ok NAME" / "not ok NAME" lines (with "# " diagnostics) for
# ktap_report; exit status 0.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
set +eu
# shellcheck source=guest.sh
source "$here/guest.sh" lib "$here/.." >/dev/null

check() { # check NAME EXPECTED_REGEX OUTPUT
	if grep -Eq -- "$2" <<<"$3"; then
		echo "ok harness.$1"
	else
		echo "not ok harness.$1"
		echo "# expected a line matching: $2"
		sed 's/^/# seen: /' <<<"$3" | head -n 20
	fi
}

out="$(printf 'ok a\nok b # SKIP no hotplug\nnot ok c\n' | ktap_report)"
check ktap_report_counts_skips '^1 passed, 1 failed, 1 skipped$' "$out"

nested='KTAP version 1
1..1
    KTAP version 1
    # Subtest: suite
    1..3
    ok 1 a
    ok 2 b
ok 1 suite'
out="$(ktap_leaves kunit 1 <<<"$nested")"
check ktap_leaves_nested_plan 'RWQ-RESULT not ok kunit\.plan # planned 3 tests in the subtest suite, got 2' "$out"
out="$(printf 'KTAP version 1\n1..2\nok 1 a\nBail out! device gone\n' | ktap_leaves e2e 1)"
check ktap_leaves_bail_out 'RWQ-RESULT not ok e2e\.bail_out' "$out"
check ktap_leaves_top_plan 'RWQ-RESULT not ok e2e\.plan # planned 2 tests in the top level, got 1' "$out"
out="$(printf 'KTAP version 1\n1..2\nok 1 a\nok b\n' | ktap_leaves e2e 1)"
check ktap_leaves_unparsed 'RWQ-RESULT not ok e2e\.unparsed' "$out"
out="$(printf 'KTAP version 1\nok 1 a\n' | ktap_leaves e2e 1)"
check ktap_leaves_no_plan 'RWQ-RESULT not ok e2e\.plan # results without a plan' "$out"
out="$(printf 'KTAP version 1\n1..1\n    1..2\n    ok 1 x\n    ok 2 y\nok 1 p\n' | ktap_leaves s 1)"
check ktap_leaves_good_plan '^RWQ-RESULT ok s\.y$' "$out"
if grep -q 'not ok' <<<"$out"; then
	echo "not ok harness.ktap_leaves_no_false_alarm"
	sed 's/^/# seen: /' <<<"$out"
else
	echo "ok harness.ktap_leaves_no_false_alarm"
fi

log='RWQ-RESULT ok a
RWQ-STAGE one 1
RWQ-RESULT ok b
RWQ-STAGE two 2
RWQ-NOISE
RWQ-DONE 3'
out="$(guest_report "one two three" <<<"$log")"
check guest_report_lost_result 'not ok two\.results_arrived' "$out"
check guest_report_missing_stage 'not ok three # the guest never reported this stage' "$out"
check guest_report_unknown_line 'not ok guest_protocol # unknown line' "$out"
check guest_report_done_count 'not ok guest_protocol\.results_arrived # the guest printed 3 results, 2 arrived' "$out"

scan="$here/dmesg-scan.sh"
rc=0
out="$(printf '[ 1.0] hello\n[ 2.0] WARNING: CPU: 1 PID: 2 at x\n' | bash "$scan")" || rc=$?
check dmesg_scan_catches_warning "^status 1: WARNING: CPU" "status $rc: $out"
rc=0
out="$(printf '[ 1.0] hello\n' | bash "$scan")" || rc=$?
check dmesg_scan_clean_passes "^status 0:$" "status $rc:$out"
rc=0
out="$(printf 'hello\n' | RUST_WQ_DMESG_ALLOW='(' bash "$scan" 2>&1)" || rc=$?
check dmesg_scan_bad_allow_list_fails "^status 2: dmesg-scan: invalid allow-list regex" "status $rc: $out"
rc=0
out="$(printf 'WARNING: known thing\nBUG: other\n' | RUST_WQ_DMESG_ALLOW='known thing' bash "$scan" 2>/dev/null)" || rc=$?
check dmesg_scan_allow_list_applies "^status 1: BUG: other$" "status $rc: $out"
rm -f "$rwq_log"
exit 0
