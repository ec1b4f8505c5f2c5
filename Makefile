# rust_wq: user-facing Makefile.
#
# The module itself is described by the file Kbuild (kbuild reads Kbuild in
# preference to this Makefile), so everything here is for people and CI.
#
#   make setup    install the toolchain and build the cached test kernel
#                 (with KDIR=... given: install the tools only)
#   make          build the module and the userspace tools
#   make run      boot the VM, load the module, show a wqctl session, unload
#   make check    every test (lints, host tests, KUnit, ABI, end-to-end,
#                 kmemleak, kernel-log scan) as one nested KTAP report
#   make lint     rustfmt + clippy for the module and for wqctl; shellcheck
#                 and ruff for the scripts
#   make vm       an interactive shell in the VM (4 CPUs), module built
#   make bench    Rust vs. its C twin, every operation, on a release-config
#                 kernel built on first use (scripts/harness.py bench)
#   make stress   the long reliability runs, one KTAP report
#   make mutants  apply each deliberate break of tests/mutants/, build it,
#                 run the test it names in the VM; "N of M mutants caught"
#   make inventory  regenerate tests/inventory.txt (every test make check
#                 must report) from the code; review its diff
#   make check-arm64  build the module for arm64 (cross gcc, rustc's aarch64
#                 target) against a minimal arm64 tree prepared on first use
#   make check-debian  build for Debian's stock 7.3 kernel (its packages,
#                 its rustc and bindgen), boot it unmodified, run the
#                 end-to-end suite and the demo there (scripts/debian.sh)
#   make install-debian  on Debian running that kernel: build for it,
#                 install into /lib/modules/$(uname -r)/updates, depmod
#   make clean
#
# KDIR: a Rust-enabled kernel build tree.  Default: the cached tree built by
# scripts/setup.sh (~/.cache/rust_wq/build-<version>-<config hash>).

SHELL := /bin/bash

# Was KDIR given by the user (command line or environment)?
ifneq ($(filter command line environment environment override,$(origin KDIR)),)
KDIR_GIVEN := 1
endif
KDIR ?= $(shell bash -c '. "$(CURDIR)/scripts/lib.sh" && printf %s "$$KBUILD_DIR_DEFAULT"')
KDIR := $(KDIR)

# Environment for the kernel's Rust build and the tools (PATH, LIBCLANG_PATH).
TOOLCHAIN = source "$(CURDIR)/scripts/lib.sh" && toolchain_env && set +eu &&

# Internal: NO_SETUP=1 skips the setup prerequisite (scripts/harness.py runs
# setup once itself, then calls the targets below).
SETUP_DEP := $(if $(NO_SETUP),,setup)

KBUILD = $(MAKE) --no-print-directory -C "$(KDIR)" M="$(CURDIR)"
CARGO_MANIFEST := wqctl/Cargo.toml
RUSTFMT_COLOR ?= auto
RUSTFMT_CONFIG = $(firstword $(wildcard $(KDIR)/.rustfmt.toml $(KDIR)/source/.rustfmt.toml))

.PHONY: all setup module user wqctl abi-check test-host run check lint \
	lint-rustfmt lint-clippy lint-cargo-fmt lint-cargo-clippy lint-scripts vm bench stress \
	rust-analyzer clean help kdir-check compile-fail inventory mutants check-arm64 \
	check-debian install-debian

all: module user

setup:
ifdef KDIR_GIVEN
	@bash scripts/setup.sh deps
else
	@bash scripts/setup.sh all
endif

kdir-check:
	@test -f "$(KDIR)/Makefile" || { echo "KDIR=$(KDIR) is not a kernel build tree: run 'make setup' or pass KDIR=/path/to/a/built/rust-enabled/tree" >&2; exit 1; }

module: $(SETUP_DEP)
	@$(MAKE) --no-print-directory kdir-check
	@$(TOOLCHAIN) $(KBUILD) modules

user: wqctl abi-check

wqctl:
	@$(TOOLCHAIN) cargo build --release --manifest-path $(CARGO_MANIFEST)

abi-check: build/abi_check build/abi_check32.o

build/abi_check: tests/abi_check.c $(wildcard include/*.h)
	@mkdir -p build
	$(CC) -O2 -Wall -Werror -I include -o $@ tests/abi_check.c

# The same compile-time layout asserts on the 32-bit ABI (i386, -m32: __u64 is
# 4-byte aligned in structs there), compiled only (gcc-multilib, scripts/setup.sh).
build/abi_check32.o: tests/abi_check.c $(wildcard include/*.h)
	@mkdir -p build
	$(CC) -m32 -O2 -Wall -Werror -I include -c -o $@ tests/abi_check.c

# Compile-fail checks of the workqueue API (tests/compile_fail/*.rs): each case must be
# rejected by rustc, with the kernel's flags, with the error it names.
compile-fail: $(SETUP_DEP)
	@$(MAKE) --no-print-directory kdir-check
	@$(TOOLCHAIN) KDIR="$(KDIR)" python3 tests/compile_fail/run.py

# Host-side unit tests of wqctl.
test-host:
	@$(TOOLCHAIN) cargo test --manifest-path $(CARGO_MANIFEST)

# The demo session (scripts/demo.session) in the VM; exit 0 when it and the log scan passed.
run: $(SETUP_DEP)
	@$(MAKE) --no-print-directory module user NO_SETUP=1
	@bash scripts/vm.sh --kdir "$(KDIR)" -- "bash $(CURDIR)/scripts/guest.sh run $(CURDIR)"

check:
	@KDIR="$(KDIR)" KDIR_GIVEN="$(KDIR_GIVEN)" python3 scripts/harness.py check

# The list of every KUnit case, e2e test and stress scenario make check must
# report (scripts/inventory.py): from the code, after a merge that adds tests.
inventory: wqctl
	@python3 scripts/inventory.py write

# Each patch of tests/mutants/ applied to a scratch copy (build/mutants/),
# built, and its expected test run against it (scripts/mutants.py); MUTANTS='GLOB...'
# runs a subset.
mutants: $(SETUP_DEP)
	@$(MAKE) --no-print-directory user NO_SETUP=1
	@KDIR="$(KDIR)" python3 scripts/mutants.py

lint: lint-rustfmt lint-clippy lint-cargo-fmt lint-cargo-clippy lint-scripts

lint-scripts:
	@$(TOOLCHAIN) shellcheck scripts/*.sh .ci/run && ruff check --no-cache --quiet scripts/*.py tests/compile_fail/*.py

# Never `make -C $(KDIR) M=... rustfmt`: for an external module it formats
# the kernel tree itself.  rustfmt follows `mod`/`#[path]` from the crate root.
lint-rustfmt: $(SETUP_DEP)
	@$(MAKE) --no-print-directory kdir-check
	@test -n "$(RUSTFMT_CONFIG)" || { echo "no .rustfmt.toml in $(KDIR)" >&2; exit 1; }
	@$(TOOLCHAIN) rustfmt --check --color $(RUSTFMT_COLOR) --edition 2021 --config-path "$(RUSTFMT_CONFIG)" rust_wq_main.rs

# Clippy with the kernel's lints; any warning fails (but kbuild's own notice
# that the host's pahole differs from the kernel's build, which is about the
# machine, not the code).  It builds a copy of the module's sources in
# $(CLIPPY_TREE), so that it never touches the module built here (make check
# runs it while the VMs load that module); its rust_wq_main.o is removed so
# that clippy really runs (kbuild would otherwise consider it up to date).
CLIPPY_TREE := build/clippy-tree
lint-clippy: $(SETUP_DEP)
	@$(MAKE) --no-print-directory kdir-check
	@mkdir -p $(CLIPPY_TREE) && rm -rf $(addprefix $(CLIPPY_TREE)/,src bench include rust_wq_main.o)
	@find Kbuild rust_wq_main.rs src bench include -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild \) | \
		cpio -pdm --quiet $(CLIPPY_TREE)
	@$(TOOLCHAIN) set -o pipefail; \
	$(MAKE) --no-print-directory -C "$(KDIR)" M="$(CURDIR)/$(CLIPPY_TREE)" CLIPPY=1 modules 2>&1 | tee build/clippy.log; rc=$$?; \
	if grep 'warning:' build/clippy.log | grep -qv 'warning: pahole version differs'; then echo "clippy: warnings above are errors" >&2; exit 1; fi; \
	exit $$rc

lint-cargo-fmt:
	@$(TOOLCHAIN) cargo fmt --manifest-path $(CARGO_MANIFEST) --check -- --color $(RUSTFMT_COLOR)

lint-cargo-clippy:
	@$(TOOLCHAIN) cargo clippy --manifest-path $(CARGO_MANIFEST) -- -D warnings

vm: $(SETUP_DEP)
	@$(MAKE) --no-print-directory module user NO_SETUP=1
	@bash scripts/vm.sh --kdir "$(KDIR)" --cpus 4

# The benchmark builds (once) and boots its own release-config kernel, and
# builds the module for it itself; a KDIR given by the user is used instead.
bench:
	@KDIR="$(KDIR)" KDIR_GIVEN="$(KDIR_GIVEN)" python3 scripts/harness.py bench

stress:
	@$(MAKE) --no-print-directory module user
	@KDIR="$(KDIR)" python3 scripts/harness.py stress

# The module compiled and linked for arm64: Debian's aarch64 cross gcc for C, rustc's
# aarch64 target for Rust, against a minimal arm64 configuration of which only
# `modules_prepare` is built (scripts/setup.sh arm64: once, cached by config hash).
# It builds a copy of the sources in build/arm64/tree (kbuild's M= refuses a tree that
# holds the x86 build's outputs; the copy keeps modification times, so rebuilds are
# incremental). Without vmlinux there is no symbol list, so modpost cannot resolve the
# module's undefined symbols: KBUILD_MODPOST_WARN=1 turns those (and only those) into
# warnings, which are counted rather than printed. Compiling and linking are what this
# checks; compiler warnings fail it.
ARM64_MAKE = ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- KBUILD_MODPOST_WARN=1
ARM64_TREE = build/arm64/tree
check-arm64:
	@bash scripts/setup.sh arm64
	@mkdir -p $(ARM64_TREE) && rm -rf $(addprefix $(ARM64_TREE)/,src bench include)
	@find Kbuild rust_wq_main.rs src bench include -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild \) | \
		cpio -pdm --quiet $(ARM64_TREE)
	@kdir="$$(bash scripts/setup.sh arm64-kdir)" && $(TOOLCHAIN) \
	$(MAKE) --no-print-directory -C "$$kdir" M="$(CURDIR)/$(ARM64_TREE)" $(ARM64_MAKE) modules \
		>build/arm64/build.log 2>&1; rc=$$?; \
	grep -Ev "$(ARM64_MODPOST_NOISE)" build/arm64/build.log; \
	[ $$rc -eq 0 ] || exit $$rc; \
	file $(ARM64_TREE)/rust_wq.ko | grep -q 'ARM aarch64' || { echo "check-arm64: no arm64 rust_wq.ko" >&2; exit 1; }; \
	if grep -Eq "(warning|error)(\[|:)" build/arm64/build.log; then echo "check-arm64: compiler warnings above are errors" >&2; exit 1; fi; \
	echo "check-arm64: $(ARM64_TREE)/rust_wq.ko is an arm64 module ($$(aarch64-linux-gnu-nm -u $(ARM64_TREE)/rust_wq.ko | wc -l) undefined symbols left to the kernel, unchecked without vmlinux)"

# What modpost says about the missing vmlinux symbol list (see above).
ARM64_MODPOST_NOISE = ^WARNING: modpost: .*undefined!$$|unresolved symbol warnings|Module.symvers is missing|may not have dependencies|many unresolved symbol|KBUILD_MODPOST_WARN=1 to turn|want to proceed at your own risk
# Debian's stock kernel: scripts/debian.sh prepares its own tree and builds
# the module in build/debian-<release>/ (KDIR is not used).
check-debian:
	@python3 scripts/debian-check.py

install-debian:
	@bash scripts/debian.sh install

# rust-project.json for editors (rust-analyzer).
rust-analyzer: $(SETUP_DEP)
	@$(TOOLCHAIN) $(KBUILD) rust-analyzer

clean:
	@if [ -f "$(KDIR)/Makefile" ]; then $(TOOLCHAIN) $(KBUILD) clean; fi
	rm -f *.o *.ko *.mod *.mod.c *.mod.o .*.cmd Module.symvers modules.order
	rm -rf build rust-project.json $(filter-out results/bench-latest-release.svg,$(wildcard results/*))
	@if [ -f $(CARGO_MANIFEST) ]; then $(TOOLCHAIN) cargo clean --manifest-path $(CARGO_MANIFEST); fi

help:
	@sed -n '6,30p' Makefile | sed 's/^# \{0,1\}//'
