# warren's two commands are `make demo` and `make test`; both install what is missing.
# The lab needs root: when not root, lab commands run through sudo.

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Where rustup puts cargo when scripts/setup.sh installed it.
export PATH := $(HOME)/.cargo/bin:$(PATH)
WARREN := target/debug/warren

.PHONY: demo test setup build lint unit lab-down clean

## setup: install the apt packages warren's lab and tests need (only what is missing)
setup:
	@scripts/setup.sh

## build: compile warren
build: setup
	cargo build

## demo: build a 5-host lab, bootstrap the cluster on it with one command, prove it, show its status
demo: build
	$(SUDO) $(WARREN) lab up
	$(WARREN) -i lab/inventory.toml check
	$(WARREN) -i lab/inventory.toml apply --yes --timings
	$(WARREN) -i lab/inventory.toml verify
	$(WARREN) -i lab/inventory.toml status
	@echo
	@echo "A rerun changes nothing:"
	$(WARREN) -i lab/inventory.toml plan --exit-code
	@echo
	@echo "The lab keeps running: ssh -i lab/id_ed25519 -o UserKnownHostsFile=lab/known_hosts root@10.231.77.10"
	@echo "Remove it with: make lab-down"

## lint: formatting and clippy, warnings as errors
lint: setup
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

## test: lint, then every test: unit, golden, CLI and the lab (root, real hosts)
test: lint
	@if cargo nextest --version >/dev/null 2>&1; then \
		$(SUDO) env "PATH=$$PATH" cargo nextest run --no-fail-fast; \
	else \
		$(SUDO) env "PATH=$$PATH" cargo test --no-fail-fast; \
	fi

## lab-down: remove the lab and every trace of it
lab-down: build
	$(SUDO) $(WARREN) lab down

clean: lab-down
	cargo clean
	rm -rf rendered
