#!/usr/bin/env bash
# Usage: run_upscale_remote.sh <prompt.json> [control_weight] [--wait] [--num-gpu N]
#
# 4K-upscale the run's outputs/<name>/output.mp4 on the GPU box into outputs/<name>_upscaled/.
# control_weight defaults to UPSCALE_WEIGHT from config.sh (0.5). Refused when the run has no
# output or its video is longer than 121 frames (what the upscaler handles).
#
# Options:
#   --wait            no effect (kept for old scripts): every job waits in the GPU box's queue
#   --num-gpu N       GPUs for this upscale (default NUM_GPU)
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
need_args 1 "$@"
run_tool upscale "$@"
