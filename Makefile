PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
STAMP_MYPYC := $(VENV)/.installed-mypyc
STAMP_REDIS := $(VENV)/.installed-redis-server
STAMP_BENCH := $(VENV)/.installed-bench
# mypyc ships with mypy (a dev dependency); `make run` installs just this for the native build.
MYPYC_REQ := mypy>=1.10,<3

# Native build (tools/build_native.py; the module list is proxy/native.py). The stamp depends
# on every source mypy reads, not only the compiled ones: mypyc inlines Final constants from
# any module. JUNCTION_NATIVE=0 sets the binaries aside and runs pure Python.
NATIVE_STAMP := build/native/stamp
NATIVE_INPUTS := $(shell find proxy -name '*.py') pyproject.toml tools/build_native.py
ifeq ($(JUNCTION_NATIVE),0)
NATIVE := native-off
else
NATIVE := $(NATIVE_STAMP)
endif

# The install steps share the virtualenv: never run them side by side.
.NOTPARALLEL:
.PHONY: run test test-pure native native-off clean-native lint typecheck bench clean fuzz hardening

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(STAMP_RUN)

# The compiler toolchain for the native build; a failure here only means pure Python.
$(STAMP_MYPYC): | $(STAMP_RUN)
	$(PY) -c 'import mypyc.build, setuptools' 2>/dev/null \
		|| $(PY) -m pip install -q '$(MYPYC_REQ)' setuptools \
		|| echo "WARNING: could not install mypy; the native build will fall back to pure Python" >&2
	touch $@

# The Redis tests run against a real redis-server. When it is missing and apt-get is usable
# as root, install the Debian package (refreshing the package lists only if the first try
# fails); otherwise those tests skip and say why. Tried once per virtualenv: never fails.
$(STAMP_REDIS): | $(PY)
	@command -v redis-server >/dev/null 2>&1 \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
			&& { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 \
				|| { apt-get update -qq >/dev/null 2>&1 \
					&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1; }; }; } \
		|| echo "WARNING: no redis-server (and cannot install it); the Redis tests will be skipped" >&2
	@touch $@

# Compiles, or warns and falls back to pure Python: never fails.
$(NATIVE_STAMP): $(NATIVE_INPUTS) | $(STAMP_MYPYC)
	$(PY) tools/build_native.py build

native: | $(STAMP_MYPYC)
	$(PY) tools/build_native.py build --strict

native-off: | $(PY)
	$(PY) tools/build_native.py off

clean-native:
	$(PYTHON) tools/build_native.py clean

run: $(STAMP_RUN) $(NATIVE)
	PY=$(PY) bash examples/run-demo.sh

test: $(STAMP_DEV) $(STAMP_REDIS) $(NATIVE)
	$(PY) -m pytest

# The same suite with the compiled modules set aside (put back afterwards, if still current).
test-pure: $(STAMP_DEV) $(STAMP_REDIS)
	$(PY) tools/build_native.py stash
	$(PY) -m pytest; status=$$?; $(PY) tools/build_native.py unstash; exit $$status

# Long hypothesis runs, FUZZ_SECONDS per parser (codecs, SSE decoder, translators); not part
# of `make test`, which runs the same targets for a few examples each.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP_DEV)
	JUNCTION_FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) -m pytest -q -p no:cacheprovider tests/hardening/fuzz

# h2load and slowhttptest against a live Junction, each time-boxed (docs/security.md).
hardening: $(STAMP_DEV)
	PY=$(PY) bash tests/hardening/run_hardening.sh

lint: $(STAMP_DEV)
	$(PY) -m ruff check proxy tests benchmarks tools
	$(PY) -m ruff format --check proxy tests benchmarks tools

typecheck: $(STAMP_DEV)
	$(PY) -m mypy proxy tools

# The benchmark suite (benchmarks/README.md): about 13 minutes; BENCH_ARGS='--quick' for a smoke
# test. It installs its peers itself (apt-get, npm, a LiteLLM venv under build/bench).
$(STAMP_BENCH): pyproject.toml | $(STAMP_DEV)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

bench: $(STAMP_BENCH) $(NATIVE)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
	find proxy -name '*.so' -delete
