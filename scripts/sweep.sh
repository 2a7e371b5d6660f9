#!/usr/bin/env bash
# Usage: sweep.sh <prompt.json> --set KEY=V1,V2,... [--set KEY=...] [--zip] [--name NAME]
#
# Write one prompt JSON per variant of <prompt.json> to inputs/prompts/ and the manifest
# inputs/sweeps/<NAME>.json. KEY is a dotted path into the prompt (seed, sigma_max, prompt,
# edge.control_weight, depth.input_control); values are JSON literals (0.5, null, "0.5"), else text.
# A KEY given once is split on its top-level commas; a KEY given several times takes each value
# whole: --set 'prompt=a pier, at night' --set 'prompt=a pier at noon' is two values.
# Every variant is checked before anything is written; existing files are never overwritten.
#
# Options (see `cosmos-tools sweep --help` for all):
#   --set KEY=VALUES  one axis of the sweep (repeatable)
#   --zip             pair the axes element by element instead of taking their product
#   --name NAME       sweep name (default: the prompt's name and a timestamp)
#   --max N           allow more than 256 variants (each variant is one GPU job)
#   --dry-run         check and list the variants, write nothing
#   --json            print the manifest
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
need_args 1 "$@"
run_tool sweep "$@"
