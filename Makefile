# The README's commands. Each bootstraps .venv from nothing (only python3 >= 3.11 needed).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

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

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/smartroller bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# On the Raspberry Pi (Raspberry Pi OS Bookworm), from a checkout: the firmware in a venv,
# its systemd unit, I2C at 400 kHz, the Bluetooth controller handed to the firmware.
# hardware/install-pi.sh --dry-run prints the steps without changing anything.
SUDO ?= sudo
.PHONY: install-pi
install-pi:
	$(SUDO) bash hardware/install-pi.sh
