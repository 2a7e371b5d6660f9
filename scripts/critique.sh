#!/usr/bin/env bash
# Usage: critique.sh <run id>... [--trials N] [--num-gpu N]
#        critique.sh --sweep NAME [--trials N] [--num-gpu N]
#
# Score runs with a video critic on the GPU box (CRITIC in config.sh: cosmos3, the Cosmos 3 Reasoner,
# or reason1, Cosmos-Reason1-7B's video critic), as one queued job for all the videos. Each scored run
# gets outputs/runs/<run id>/critic.json: a score from 0 to 1, the critic's answer and reasoning, the
# model, the prompt and every trial's text; the ranking ends the output. The score is advisory: the
# review page and `cosmos-tools history --json` show it and sort by it, nothing is deleted or hidden
# because of it. A run whose output.mp4 is not here or not on the box is skipped with one line.
# Exit: 0 all scored, 1 some not scored (the others are), 2 usage, 3 GPU box or connection, 130 Ctrl-C.
#
# Options:
#   --sweep NAME      the latest run of each variant of inputs/sweeps/NAME.json
#   --trials N        answers per video (default CRITIC_TRIALS, 3); the score is their mean
#   --num-gpu N       GPUs for the critic job (default NUM_GPU; cosmos3 only)
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
if has_option --sweep "$@"; then need_args 0 "$@"; else need_args 1 "$@"; fi
run_tool critique "$@"
