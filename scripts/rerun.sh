#!/usr/bin/env bash
# Usage: rerun.sh <run id> [--no-upscale] [--wait] [--num-gpu N]
#
# Run exactly the spec that run <run id> used (e.g. city_v2-3) again, as a new run of the same
# prompt, then upscale and download it like full_cycle.sh. The spec is read from the run's local
# folder outputs/runs/<run id>/ (controlnet_spec.json, prompt_spec.json), never from the prompt
# file, which may have changed since; the history line says rerun_of=<run id>.
# Find run ids with `cosmos-tools history`. Exit: 0 ok, 1 failed, 2 usage, 3 box/connection, 4 local, 130 Ctrl-C.
#
# Options:
#   --no-upscale      skip the 4K upscale
#   --wait            no effect (kept for old scripts): every job waits in the GPU box's queue
#   --num-gpu N       GPUs for this run (default NUM_GPU; more than 1 uses torchrun)
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
need_args 1 "$@"
run_tool rerun "$@"
