#!/usr/bin/env bash
# Usage: convert_png_sequences.sh <input_directory> <output_name> [frame_count] [options]
#
# Turn a Houdini/Nuke render folder of color/depth/segmentation PNG sequences into
# inputs/videos/<output_name>/{color,depth,segmentation}.mp4 plus shot.json.
#
# Options (see `cosmos-tools convert --help` for all):
#   --fps N           frames per second (default: FPS from config.sh, 24)
#   --fit             scale or pad to the nearest Cosmos resolution bucket
#   --depth-near-bright   the depth render is already brighter-is-nearer
#   --force           encode again even if the sources have not changed
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
load_config
run_tool convert "$@"
