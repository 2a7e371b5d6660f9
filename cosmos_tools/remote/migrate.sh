#!/usr/bin/env bash
# shellcheck shell=bash
# $1 = prompt name. Once per prompt name, for folders left by the version before run ids: under the queue lock,
# move a real folder outputs/<name> to outputs/runs/<name>-0 (and outputs/<name>_upscaled to
# outputs/runs/<name>-0_upscaled) and leave a link to it in its place. Prints "FROM\0TO\0" per move.
# Exits 80 (SETUP_FAILED) when a move cannot be made (the target exists), 81 (LOCK_TIMEOUT).
name=$1
mkdir -p .cosmos-tools/queue outputs/runs || exit 80
exec 9>>.cosmos-tools/queue/lock
flock -w 120 9 || { echo "timed out waiting for .cosmos-tools/queue/lock" >&2; exit 81; }
for pair in "outputs/$name" "outputs/${name}_upscaled"; do
  if [ -d "$pair" ] && [ ! -L "$pair" ]; then
    if [ "$pair" = "outputs/$name" ]; then leaf="$name-0"; else leaf="$name-0_upscaled"; fi
    if [ -e "outputs/runs/$leaf" ] || [ -L "outputs/runs/$leaf" ]; then
      echo "cannot move $pair to outputs/runs/$leaf: that exists already" >&2; exit 80
    fi
    mv -T -- "$pair" "outputs/runs/$leaf" || exit 80
    ln -s -- "runs/$leaf" "$pair" || exit 80
    printf '%s\0%s\0' "$pair" "outputs/runs/$leaf"
  fi
done
