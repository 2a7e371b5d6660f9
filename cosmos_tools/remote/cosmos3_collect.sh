#!/usr/bin/env bash
# shellcheck shell=bash
# Run inside the container (under runner.sh) as `bash -c TEXT cosmos3-collect FOLDER NAME COMMAND...`: runs the
# Cosmos 3 inference COMMAND, which writes its sample NAME into FOLDER/NAME/, then moves that sample's files up
# into the run folder under the names every other model's run has: vision.mp4 -> output.mp4,
# control_<hint>.mp4 -> output_control_<hint>.mp4, the rest (sample_args.json, sample_outputs.json) as they are.
# It collects after a failure too (sample_args.json is written before generation), and exits with COMMAND's code.
# Keep it free of single quotes: the text travels inside the docker argv and shlex.join shows it as one word.
set -euo pipefail
shopt -s nullglob dotglob
folder=$1 name=$2
shift 2
rc=0
"$@" || rc=$?
for file in "$folder/$name"/*; do
  base=${file##*/}
  case $base in
    vision.mp4) target=$name.mp4 ;;
    control_*.mp4) target=${name}_$base ;;
    *) target=$base ;;
  esac
  mv -f -- "$file" "$folder/$target"
done
if [ -d "$folder/$name" ]; then rmdir -- "$folder/$name" 2>/dev/null || true; fi
exit "$rc"
