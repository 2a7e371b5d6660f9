#!/usr/bin/env bash
# Usage: full_cycle.sh <prompt.json> [videos_subdir_override] [--no-upscale] [--upscale-weight W]
#                      [--wait] [--num-gpu N] [--force]
#        full_cycle.sh <prompt.json> <prompt.json>... [--upscale] [--upscale-weight W] [--wait] [--num-gpu N]
#                      [--force] [--dry-run] [--detach] [--critique] [--upscale-best K]
#        full_cycle.sh inputs/sweeps/<name>.json [same options as several prompts]
#
# Upload, run with a live log, upscale (if the run succeeded), download, and append one line
# to notes/run_history.log. Re-running after a failure or a dropped connection resumes: what is
# done is not done again, a job still running or queued is re-attached; an unchanged prompt whose run
# finished ok is not run again (--force makes a new run). Exit: 0 ok, 1 run failed, 2 usage,
# 3 GPU box or connection problem, 4 local environment, 130 Ctrl-C (the job is asked to stop).
#
# Several prompts or a sweep manifest: one connection, one upload; variants that differ only in
# prompt text, input video or control fields run as one batch job (one model load), the others one
# after another; each variant is its own run with its own history line; a table ends the output.
# --critique then scores the variants with the video critic (critic.json per run, a ranking; the
# review page shows and sorts by the scores). The score is advisory: nothing is deleted or hidden.
#
# Options:
#   --no-upscale      skip the 4K upscale (one prompt)
#   --upscale         upscale every variant that ended ok (several prompts; default: no upscale)
#   --upscale-weight W    control weight of the upscaler (default UPSCALE_WEIGHT, 0.5)
#   --wait            no effect (kept for old scripts): every job waits in the GPU box's queue
#   --num-gpu N       GPUs for this run (default NUM_GPU; more than 1 uses torchrun)
#   --force           run again as a new run even if this spec already finished ok
#   --dry-run         check the prompts and show how the variants are grouped into jobs; run nothing
#   --critique        score the variants that ended ok with the video critic (CRITIC), before the review page
#   --upscale-best K  upscale only the K best-scored variants (implies --critique)
#   --detach          upload and queue every job on the box, say what was queued, return (the same command
#                     again collects the results: downloads, history lines, review)
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
need_args 1 "$@"
run_tool cycle "$@"
