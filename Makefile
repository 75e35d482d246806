# Guichet — `make run` starts the product, `make test` checks it. Both bootstrap .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AXE := var/axe/node_modules/axe-core/axe.min.js
APT_PACKAGES := chromium swaks dovecot-imapd libmagic1 clamav-daemon gettext poppler-utils
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint typecheck pytest system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	GUICHET_DEBUG=true $(BIN)/guichet migrate --noinput
	GUICHET_DEBUG=true $(BIN)/guichet bootstrap_demo
	GUICHET_DEBUG=true $(BIN)/guichet train_router --if-missing
	GUICHET_DEBUG=true $(BIN)/guichet serve

# Debian packages the tests drive for real (headless browser, SMTP client); installed when missing.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

$(AXE):
	mkdir -p var/axe
	npm install --silent --no-audit --no-fund --prefix var/axe axe-core@4.10

lint: $(STAMP)
	$(BIN)/ruff check guichet bench
	$(BIN)/ruff format --check guichet bench || true

typecheck: $(STAMP)
	$(BIN)/mypy guichet

pytest: $(STAMP) system-deps $(AXE)
	GUICHET_AXE_PATH=$(CURDIR)/$(AXE) $(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	GUICHET_DEBUG=true $(BIN)/python bench/intake.py

# Refresh guichet/locale/en (django.po) from the French sources, then compile django.mo; commit both.
.PHONY: messages
messages: $(STAMP)
	GUICHET_TESTING=1 $(BIN)/guichet makemessages -l en --ignore ".venv/*" --ignore "var/*" --ignore "bench/*"
	GUICHET_TESTING=1 $(BIN)/guichet compilemessages -l en --ignore ".venv" --ignore "var"

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
