#!/usr/bin/env bash
# Usage: review.sh [RUN_ID... | --sweep NAME | --shot SHOT | --last N] [--out FILE] [--open] [--sheet-only]
#
# Compare runs side by side: write one static HTML page under outputs/review/ (named after the
# selection) and a contact sheet PNG beside it (first, middle and last frame of every run, labelled).
# The page shows the shot's source and control videos, then each run's output with its status,
# duration, seed and the values that differ between the runs; one Play/Pause, a shared scrubber and
# the arrow keys (one frame) drive every video. It opens from file://, keeps working when outputs/
# is copied or moved, and makes no network request. No connection to the GPU box is needed.
# Find run ids with `cosmos-tools history`. Exit: 0 ok, 1 unknown run or sweep, 2 bad arguments.
#
# Options:
#   --sweep NAME      the latest run of each variant of inputs/sweeps/NAME.json
#   --shot SHOT       every run of shot SHOT
#   --last N          the last N runs of notes/run_history.log
#   --out FILE        write the page here instead (the sheet goes beside it, .png)
#   --open            open the page in the default browser
#   --sheet-only      write only the contact sheet image
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
run_tool review "$@"
