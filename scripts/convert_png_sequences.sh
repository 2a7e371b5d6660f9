#!/usr/bin/env bash
# Usage: convert_png_sequences.sh <input_directory> <output_name> [frame_count] [options]
#
# Turn a Houdini/Nuke render folder of color/depth/segmentation PNG sequences into
# inputs/videos/<output_name>/{color,depth,segmentation}.mp4 plus shot.json.
# Any padding and start frame (color.1001.png, RGB_00000.png, z.7.png), in the folder or one level of
# pass subfolders (color/, depth/, seg/ ...). Pass names in any case, Houdini's and Nuke's included:
# color/rgb/beauty, depth/z/Pz/zdepth, segmentation/seg/mask/matte/id/objid/Op_Id/Prim_Id (the full
# list: docs/convert.md); --pass maps any other. color is required, depth and seg optional. Every
# sequence found but not used is named on stderr.
# Gaps, mismatched frame ranges or sizes and broken PNGs stop it with one line; nothing is written
# and an earlier shot folder of that name is kept. frame_count keeps the first N frames.
#
# Options (see `cosmos-tools convert --help`):
#   --fps N               frames per second (default: FPS from config.sh, 24)
#   --fit                 scale/pad to the closest Cosmos bucket (1280x704, 960x704, 960x960, ...)
#   --depth-near-bright   the depth render is already brighter-is-nearer (default: inverted)
#   --pass PASS=NAME      use sequence NAME for PASS (color, depth, segmentation): --pass depth=Pz
#   --force               encode again even if the sources have not changed
#   --json                print shot.json on stdout
#   -q, --quiet           no progress bar and no summary
#   -h, --help            show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
need_args 2 "$@"
run_tool convert "$@"
