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
	rust-analyzer clean help kdir-check compile-fail check-debian install-debian

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

abi-check: build/abi_check

build/abi_check: tests/abi_check.c $(wildcard include/*.h)
	@mkdir -p build
	$(CC) -O2 -Wall -Werror -I include -o $@ tests/abi_check.c

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

lint: lint-rustfmt lint-clippy lint-cargo-fmt lint-cargo-clippy lint-scripts

lint-scripts:
	@$(TOOLCHAIN) shellcheck scripts/*.sh .ci/run && ruff check --no-cache --quiet scripts/*.py tests/compile_fail/*.py

# Never `make -C $(KDIR) M=... rustfmt`: for an external module it formats
# the kernel tree itself.  rustfmt follows `mod`/`#[path]` from the crate root.
lint-rustfmt: $(SETUP_DEP)
	@$(MAKE) --no-print-directory kdir-check
	@test -n "$(RUSTFMT_CONFIG)" || { echo "no .rustfmt.toml in $(KDIR)" >&2; exit 1; }
	@$(TOOLCHAIN) rustfmt --check --color $(RUSTFMT_COLOR) --edition 2021 --config-path "$(RUSTFMT_CONFIG)" rust_wq.rs

# Clippy with the kernel's lints; any warning fails.  rust_wq.o is removed so
# that clippy really runs (kbuild would otherwise consider it up to date); the
# next `make module` rebuilds it with rustc (the command line changed).
lint-clippy: $(SETUP_DEP)
	@$(MAKE) --no-print-directory kdir-check
	@mkdir -p build
	@rm -f rust_wq.o
	@$(TOOLCHAIN) set -o pipefail; \
	$(KBUILD) CLIPPY=1 modules 2>&1 | tee build/clippy.log; rc=$$?; \
	if grep -q 'warning:' build/clippy.log; then echo "clippy: warnings above are errors" >&2; exit 1; fi; \
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
	@sed -n '6,24p' Makefile | sed 's/^# \{0,1\}//'
