#!/usr/bin/env bash
# Compile-fail checks of the workqueue layer's API: every tests/compile_fail/*.rs must be
# rejected by rustc with the error its "// expect-error: REGEX" line names.
#
# The cases are modules of a copy of the crate (build/compile_fail/crate/), built by kbuild
# against KDIR with the kernel's own rustc flags. rustc reports the type errors of every
# function, so one build checks all cases; the build must fail with exactly one error per
# case, each case's expected message must appear, pointing at that case's file.
#
# Usage: KDIR=... tests/compile_fail/run.sh (the toolchain environment already set up, as
# `make compile-fail` does). Prints one "ok"/"not ok" line per case; exit status 1 if any
# case is not rejected as expected.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="$root/build/compile_fail/crate"
: "${KDIR:?KDIR must name a kernel build tree}"

rm -rf "$dir"
mkdir -p "$dir"
cp -r "$root/rust_wq.rs" "$root/Kbuild" "$root/src" "$dir/"
n=0
for case in "$here"/*.rs; do
	name="$(basename "$case" .rs)"
	printf '\n#[path = "%s"]\nmod compile_fail_%s;\n' "$case" "$name" >>"$dir/rust_wq.rs"
	n=$((n + 1))
done

log="$dir/build.log"
if make --no-print-directory -C "$KDIR" M="$dir" modules >"$log" 2>&1; then
	echo "not ok compile_fail: the crate with all $n cases compiled"
	exit 1
fi

fail=0
# "error[E0599]: message" followed (within a few lines) by "--> path:line:col".
errors="$(awk '/^error(\[E[0-9]+\])?: / && !/^error: aborting/ && !/could not compile/ { msg = $0; next }
	msg != "" && /^ *--> / { sub(/^ *--> /, ""); print $0 "\t" msg; msg = "" }' "$log")"
total="$(printf '%s\n' "$errors" | grep -c . || true)"
for case in "$here"/*.rs; do
	name="$(basename "$case" .rs)"
	expect="$(sed -n 's|^// expect-error: ||p' "$case")"
	mine="$(printf '%s\n' "$errors" | grep -F "$case:" || true)"
	if [ -z "$expect" ]; then
		echo "not ok $name # no '// expect-error:' line"
		fail=1
	elif [ -z "$mine" ]; then
		echo "not ok $name # compiled (no error in this file)"
		fail=1
	elif [ "$(printf '%s\n' "$mine" | wc -l)" -ne 1 ] || ! printf '%s\n' "$mine" | grep -Eq -- "$expect"; then
		echo "not ok $name # not the expected error: $expect"
		printf '%s\n' "$mine" | sed 's/^/#   /'
		fail=1
	else
		echo "ok $name # $(printf '%s\n' "$mine" | cut -f2 | cut -c1-120)"
	fi
done
if [ "$total" -ne "$n" ]; then
	echo "not ok compile_fail.total # $total errors for $n cases:"
	printf '%s\n' "$errors" | sed 's/^/#   /'
	fail=1
fi
exit $fail
