#!/usr/bin/env bash
# Usage: full_cycle.sh <prompt.json> [videos_subdir_override] [--no-upscale] [--upscale-weight W]
#
# Upload, run with a live log, upscale (if the run succeeded), download, and append one line
# to notes/run_history.log. Re-running after a failure or a dropped connection resumes.
#
# Options:
#   --no-upscale      skip the 4K upscale
#   --upscale-weight W    control weight of the upscaler (default UPSCALE_WEIGHT, 0.5)
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
load_config
run_tool cycle "$@"
