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

.PHONY: help setup test lint demo convert run bench clean-demo

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(PY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

setup: $(PY) ## create .venv and install the toolkit with its test tools (needs ffmpeg, openssh)
	$(VENV)/bin/pip install -q -e '.[test]'
	@command -v ffmpeg >/dev/null || echo "note: ffmpeg is missing: sudo apt-get install ffmpeg" >&2
	@[ -f config.sh ] || echo "note: no config.sh yet: cp config.sh.example config.sh and set REMOTE_HOST" >&2

test: setup ## run the test suite (real sshd, real ffmpeg)
	$(VENV)/bin/pytest -q

lint: setup ## ruff and shellcheck
	$(VENV)/bin/ruff check cosmos_tools tests bench
	$(VENV)/bin/shellcheck -x scripts/*.sh .ci/run

demo: setup ## the whole cycle on the built-in rehearsal GPU host
	$(PY) -m cosmos_tools.demo

convert: setup ## make convert SHOT=name [SRC=art/render_folder] [FRAMES=N]
	@[ -n "$(SHOT)" ] || { echo "error: give SHOT=<name> (and SRC=<render folder> if not art/<name>)" >&2; exit 2; }
	./scripts/convert_png_sequences.sh "$(SRC)" "$(SHOT)" $(FRAMES)

run: setup ## make run PROMPT=inputs/prompts/x.json: the full cycle
	@[ -n "$(PROMPT)" ] || { echo "error: give PROMPT=inputs/prompts/<name>.json" >&2; exit 2; }
	./scripts/full_cycle.sh "$(PROMPT)"

bench: setup ## transfer and conversion benchmarks (ratios against scp, rsync, raw ffmpeg)
	$(PY) bench/transfer.py
	$(PY) bench/convert.py
