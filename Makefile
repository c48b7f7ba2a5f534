# The README's commands. Each bootstraps .venv from nothing (only python3 >= 3.11 needed).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPILED_VENV ?= .venv-compiled
COMPILED_STAMP := $(COMPILED_VENV)/.built
FIRMWARE_SOURCES := $(shell find firmware -name '*.py')

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/smartroller demo

# The dashboard's browser tests drive Debian's Chromium (tests/e2e/browser.py).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

test: $(STAMP) $(CHROMIUM) $(COMPILED_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/smartroller bench

clean:
	rm -rf $(VENV) $(COMPILED_VENV) .pytest_cache build *.egg-info

# The firmware with its per-cycle modules compiled by mypyc (setup.py, COMPILED), in a
# venv of its own (not the tests' venv: the tests run the pure-Python modules, the
# reference), with the host's packages: .venv-compiled/bin/smartroller bench measures the
# compiled firmware. ~1-2 minutes (gcc and Python's headers needed). make test builds it
# when the firmware's sources changed since the last build, and tests/test_compiled.py
# compares its frames with the pure modules' (it skips where no build exists).
$(COMPILED_STAMP): pyproject.toml setup.py $(FIRMWARE_SOURCES)
	$(MAKE) firmware-compiled
	touch $@

.PHONY: firmware-compiled
firmware-compiled:
	$(PY) -m venv $(COMPILED_VENV)
	$(COMPILED_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMPILED_VENV)/bin/python -m pip install --quiet '.[host,compile]'
	rm -rf build
	SMARTROLLER_COMPILE=1 $(COMPILED_VENV)/bin/python -m pip install --quiet \
		--no-build-isolation --no-deps --force-reinstall .
	rm -rf build

# On the Raspberry Pi (Raspberry Pi OS Bookworm), from a checkout: the firmware in a venv,
# its systemd unit, I2C at 400 kHz, the Bluetooth controller handed to the firmware.
# hardware/install-pi.sh --dry-run prints the steps without changing anything.
SUDO ?= sudo
.PHONY: install-pi
install-pi:
	$(SUDO) bash hardware/install-pi.sh
