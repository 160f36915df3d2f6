# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev,ray,onnx,browser,ocr
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-deps
RUN_FILE ?= seeds/001_2040a8d96ddfc16d.txt

.PHONY: install system-deps run test lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

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
run: install
	$(VENV)/bin/chainstage train --default
	$(VENV)/bin/chainstage classify $(RUN_FILE)

test: install system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
