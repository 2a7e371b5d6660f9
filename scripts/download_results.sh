#!/usr/bin/env bash
# Usage: download_results.sh <prompt.json>
#
# Fetch outputs/<name>/ and outputs/<name>_upscaled/ from the GPU box into the local outputs
# folder. Every file is verified; files already present and identical are skipped.
#
# Options:
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
need_args 1 "$@"
run_tool download "$@"
