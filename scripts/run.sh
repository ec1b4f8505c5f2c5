#!/usr/bin/env bash
# `make run`: boot the test VM, load rust_wq.ko, run the wqctl session
# scripts/demo.session (a transcript), print the module's kernel log from the
# marker on, unload.  Expects the module and
# wqctl to be built already (the Makefile does that first).
#
# Exit status: 0 on success; the guest's failure status, 124 on a VM timeout.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export KDIR="${KDIR:-$KBUILD_DIR_DEFAULT}"
start=$SECONDS
rc=0
bash "$RUST_WQ_ROOT/scripts/vm.sh" --kdir "$KDIR" -- \
	"bash $RUST_WQ_ROOT/scripts/guest.sh run $RUST_WQ_ROOT" || rc=$?
if [ $rc -eq 0 ]; then
	log "make run: OK ($((SECONDS - start)) s)"
else
	log "make run: FAILED (status $rc, $((SECONDS - start)) s)"
fi
exit $rc
