#!/usr/bin/env bash
# Usage: run_inference_remote.sh <prompt.json> [--detach] [--wait] [--num-gpu N] [--force]
#
# Run Cosmos-Transfer1 on the GPU box inside Docker as a detached, named job and stream its log.
# The job survives a dropped connection: re-attach with `cosmos-tools attach <name>`.
# Ctrl-C asks the job to stop. A job that already finished ok with the same spec is not run
# again; one still running is re-attached. Exit: 0 ok, 1 failed, 3 box/connection, 130 Ctrl-C.
#
# Options:
#   --detach          start the job and return without streaming its log
#   --wait            no effect (kept for old scripts): every job waits in the GPU box's queue
#   --num-gpu N       GPUs for this run (default NUM_GPU; more than 1 uses torchrun)
#   --force           run again even if it already finished ok
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
need_args 1 "$@"
run_tool run "$@"
