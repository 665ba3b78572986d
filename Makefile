# Two entry points: `make demo` runs a node and real work orders; `make test` runs lint, then the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install install-test bench clean contracts chain-node

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# The Ethereum JSON-RPC node (Ganache, pinned in package.json/package-lock.json) for the chain tests and demo.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

chain-node: node_modules/.installed

# Recompile the Vyper contracts into src/adytum/chain/contracts/artifacts.json (tests/chain/test_build.py checks it).
contracts: $(VENV)/.installed-test
	$(BIN)/python -m adytum.chain.build

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/adytum demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: lint chain-node
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/bench_node.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info

# --- Hardware path: the enclave under Gramine-SGX (UNTESTED ON HARDWARE; see docs/hardware.md) ---
# Needs Gramine >= 1.6, SGX with DCAP (AESM + PCCS) and a key from `gramine-sgx-gen-private-key`.
ARCH_LIBDIR  ?= /lib/$(shell $(CC) -dumpmachine)
GRAMINE_LOG  ?= error
SGX_DEBUG    ?= false
WORKER_ID    ?= $(shell printf %s adytum-worker-1 | sha256sum | cut -d' ' -f1)
ENCLAVE_DATA ?= $(CURDIR)/adytum-data/enclave
SGX_PY        = $(BIN)/python -c

.PHONY: sgx-enclave sgx-clean

sgx-enclave: adytum-enclave.manifest.sgx

adytum-enclave.manifest: gramine/adytum-enclave.manifest.template $(VENV)/.installed
	mkdir -p $(ENCLAVE_DATA)
	gramine-manifest \
		-Dlog_level=$(GRAMINE_LOG) \
		-Darch_libdir=$(ARCH_LIBDIR) \
		-Dentrypoint=$$($(SGX_PY) 'import os, sys; print(os.path.realpath(sys.executable))') \
		-Dpy_stdlib=$$($(SGX_PY) 'import sysconfig; print(sysconfig.get_paths()["stdlib"])') \
		-Dsite_packages=$$($(SGX_PY) 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
		-Dsrc_dir=$(CURDIR)/src \
		-Ddata_dir=$(ENCLAVE_DATA) \
		-Dworker_id=$(WORKER_ID) \
		-Ddebug=$(SGX_DEBUG) \
		$< $@

# gramine-sgx-sign writes both the .manifest.sgx and the .sig.
adytum-enclave.manifest.sgx: adytum-enclave.manifest
	gramine-sgx-sign --manifest $< --output $@

sgx-clean:
	rm -f adytum-enclave.manifest adytum-enclave.manifest.sgx adytum-enclave.sig
