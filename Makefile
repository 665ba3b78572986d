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

# The demo also shows the vision workload: OpenCV (the vision extra).
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[vision]'
	touch $@ $(VENV)/.installed

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

demo: $(VENV)/.installed-demo
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

# --- Hardware path: the enclaves under Gramine-SGX (UNTESTED ON HARDWARE; see docs/hardware.md) ---
# Needs Gramine >= 1.6, SGX with DCAP (AESM + PCCS) and a key from `gramine-sgx-gen-private-key`.
# One template, two signed builds: adytum-kme (key manager, ISVPRODID 2) and adytum-wpe (work orders, ISVPRODID 1).
ARCH_LIBDIR  ?= /lib/$(shell $(CC) -dumpmachine)
GRAMINE_LOG  ?= error
SGX_DEBUG    ?= false
# TCB statuses besides UpToDate the enclaves accept in each other's quotes (comma-separated; measured), e.g.
# ACCEPT_TCB=SWHardeningNeeded: Intel rates most platforms so, and then the pool comes up only with it.
ACCEPT_TCB   ?=
WORKER_ID    ?= $(shell printf %s adytum-worker-1 | sha256sum | cut -d' ' -f1)
DATA_DIR     ?= $(CURDIR)/adytum-data
SGX_PY        = $(BIN)/python -c
# the work-order build includes DATA_DIR's workload plug-ins when there are any (they are trusted files)
SGX_PLUGINS   = $(if $(wildcard $(DATA_DIR)/workloads.toml),true,false)

.PHONY: sgx-enclave sgx-clean

sgx-enclave: adytum-kme.manifest.sgx adytum-wpe.manifest.sgx

adytum-kme.manifest adytum-wpe.manifest: adytum-%.manifest: gramine/adytum-enclave.manifest.template $(VENV)/.installed
	install -d -m 700 $(DATA_DIR) $(DATA_DIR)/kme
	gramine-manifest \
		-Drole=$* \
		-Dlog_level=$(GRAMINE_LOG) \
		-Darch_libdir=$(ARCH_LIBDIR) \
		-Dentrypoint=$$($(SGX_PY) 'import os, sys; print(os.path.realpath(sys.executable))') \
		-Dpy_stdlib=$$($(SGX_PY) 'import sysconfig; print(sysconfig.get_paths()["stdlib"])') \
		-Dsite_packages=$$($(SGX_PY) 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
		-Dsrc_dir=$(CURDIR)/src \
		-Ddata_dir=$(abspath $(DATA_DIR)) \
		-Dworker_id=$(WORKER_ID) \
		-Dplugins=$(SGX_PLUGINS) \
		-Ddebug=$(SGX_DEBUG) \
		-Daccept_tcb=$(ACCEPT_TCB) \
		$< $@

# gramine-sgx-sign writes both the .manifest.sgx and the .sig.
adytum-%.manifest.sgx: adytum-%.manifest
	gramine-sgx-sign --manifest $< --output $@

sgx-clean:
	rm -f adytum-kme.manifest adytum-kme.manifest.sgx adytum-kme.sig adytum-wpe.manifest adytum-wpe.manifest.sgx adytum-wpe.sig
