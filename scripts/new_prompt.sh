#!/usr/bin/env bash
# Usage: new_prompt.sh <base_name> "<prompt text>"
#        new_prompt.sh --duplicate <existing.json>
#
# Write inputs/prompts/<base_name>_<YYYYmmdd_HHMMSS>.json, a controlnet spec for the shot
# inputs/videos/<base_name>/ with the modalities that shot has, and create outputs/<name>/.
# --duplicate copies an existing prompt under a new timestamp. Existing files are never overwritten.
# <base_name> may be at most 194 bytes in UTF-8 (an ASCII letter is one byte): the timestamp and the run's
# files add the rest of the 255 a file name holds.
#
# Options (see `cosmos-tools new-prompt --help` for all):
#   --shot NAME       shot folder to use when it differs from <base_name>
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
has_option --duplicate "$@" || need_args 2 "$@"
run_tool new-prompt "$@"
