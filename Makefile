# cosmos-tools: every target runs from the project root. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
TOOL := $(VENV)/bin/cosmos-tools
SHOT ?=
SRC ?= art/$(SHOT)
FRAMES ?=
PROMPT ?=

.PHONY: help deps test-deps bench-deps setup test test-fast lint demo convert run bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

# apt_install: install the Debian packages named in $$missing (root, or sudo without a password), or say how.
define apt_install
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; \
  else echo "error: missing system packages:$$missing; install them: sudo apt-get install$$missing" >&2; exit 1; fi; \
  echo "installing:$$missing" >&2; \
  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
fi
endef

deps: ## install missing system packages (ffmpeg, fonts, OpenSSH, venv, Slurm and munge) with apt-get when root or sudo allows
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null || missing="$$missing openssh-server"; \
	command -v ssh >/dev/null || missing="$$missing openssh-client"; \
	python3 -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && command -v sbatch >/dev/null || missing="$$missing slurm-wlm"; \
	[ -x /usr/sbin/munged ] || missing="$$missing munge"; \
	$(apt_install)

test-deps: ## what only the tests need: headless Chromium and its driver (the review page's browser tests)
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	$(apt_install)

bench-deps: ## what only the benchmarks need: rsync (the reference for unchanged re-uploads)
	@missing=""; \
	command -v rsync >/dev/null || missing="$$missing rsync"; \
	$(apt_install)

$(PY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

setup: deps $(VENV)/.installed ## system packages, .venv, the toolkit and its test tools
	@[ -f config.sh ] || echo "note: no config.sh yet: cp config.sh.example config.sh and set REMOTE_HOST (make demo needs none)" >&2

test: setup test-deps ## run the whole test suite, as CI does (real sshd, real ffmpeg)
	$(VENV)/bin/pytest -q

test-fast: setup ## the unit tier: no sshd, no video encoding (leaves out tests marked integration or slow)
	$(VENV)/bin/pytest -q -m "not integration and not slow"

lint: setup ## ruff, shellcheck and mypy
	$(VENV)/bin/ruff check cosmos_tools tests bench
	$(VENV)/bin/shellcheck -x scripts/*.sh .ci/run cosmos_tools/remote/*.sh
	$(VENV)/bin/mypy

demo: setup ## the whole cycle on the built-in rehearsal GPU host, in a temporary demo project
	$(PY) -m cosmos_tools.demo

convert: setup ## make convert SHOT=name [SRC=art/render_folder] [FRAMES=N] [PASSES="depth=Pz seg=objid"]
	@[ -n "$(SHOT)" ] || { echo "error: give SHOT=<name> (and SRC=<render folder> if not art/<name>)" >&2; exit 2; }
	./scripts/convert_png_sequences.sh "$(SRC)" "$(SHOT)" $(FRAMES) $(foreach p,$(PASSES),--pass "$(p)")

run: setup ## make run PROMPT=inputs/prompts/x.json: the full cycle
	@[ -n "$(PROMPT)" ] || { echo "error: give PROMPT=inputs/prompts/<name>.json" >&2; exit 2; }
	./scripts/full_cycle.sh "$(PROMPT)"

bench: setup bench-deps ## benchmarks: transfers, conversion, sweeps (also on Slurm), the queue (ratios against scp, rsync, raw ffmpeg, the ideal)
	$(PY) bench/transfer.py
	$(PY) bench/convert.py
	$(PY) bench/sweep.py
	$(PY) bench/sweep.py --slurm
	$(PY) bench/queue_gap.py
