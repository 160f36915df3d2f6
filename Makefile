# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
RUN_EXTRAS := onnx
EXTRAS := dev,ray,onnx,browser,ocr
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-deps
RUN_FILE ?= seeds/001_2040a8d96ddfc16d.txt

.PHONY: install install-run system-deps run test lint clean

# `make run` installs what the main job needs (the package and its ONNX export); `make test` adds the rest.
# --no-compile: pip would byte-compile every file of the venv (about 20,000, torch and Ray among them), some 40 s
# of a first run. Python compiles the modules that chainstage imports (about a thousand) when it first imports them,
# and keeps them in the venv: so make lets it write bytecode even where the environment says not to, or every later
# command would compile them again (8 s each).
unexport PYTHONDONTWRITEBYTECODE
$(RUN_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[$(RUN_EXTRAS)]'
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet --no-compile -e '.[$(EXTRAS)]'
	touch $(STAMP)

install-run: $(RUN_STAMP)

install: $(STAMP)

# Debian packages the tests use: Chromium for the report-page test, and a CJK font for the page text it shows.
# (Charts need neither: they draw with the Noto Sans CJK font that the noto-cjk-sans-otc dependency installs.)
# Installed only when missing, and only where apt-get exists and we are root (CI machines are).
$(SYSTEM_STAMP): | $(STAMP)
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi 'wenquanyi'; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; \
	  else echo "note: cannot apt-get chromium and fonts-wqy-microhei here; the browser test will be skipped"; fi; \
	fi
	touch $(SYSTEM_STAMP)

system-deps: $(SYSTEM_STAMP)

# The main job: build the offline base encoder and train the default classifier on first use, then classify.
run: install-run
	$(VENV)/bin/chainstage train --default
	$(VENV)/bin/chainstage classify $(RUN_FILE)

test: install system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
