#!/usr/bin/env bash
# shellcheck shell=bash
# $1 = job folder, $2 = container, $3 = number of docker words, then the full `docker run` argv (docker words
# first). Under the GPU lock: refuse (exit 83 BUSY, running names on stdout) when a job runs, else rotate the
# previous attempt's log, clear its result, remove a stopped leftover container of that name (one that was
# never auto-removed) and start the container. Other exits: 80 SETUP_FAILED, 81 LOCK_TIMEOUT, 82 DOCKER_FAILED
# (codes.py), or docker run's own.
d=$1 container=$2 nd=$3; shift 3
docker=("${@:1:nd}")
mkdir -p .cosmos-tools "$d" || exit 80
command -v flock >/dev/null || { echo "flock is not installed on the GPU box (util-linux)" >&2; exit 80; }
exec 9>>.cosmos-tools/gpu.lock
flock -w 120 9 || { echo "timed out waiting for .cosmos-tools/gpu.lock" >&2; exit 81; }
if ! names=$("${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' 2>&1 </dev/null 9>&-); then
  printf 'docker ps failed: %s\n' "$names" >&2; exit 82
fi
if [ -n "$names" ]; then printf '%s\n' "$names"; exit 83; fi
if [ -f "$d/run.log" ]; then mv -f "$d/run.log" "$d/run.log.prev"; fi
rm -f "$d/exit_code" "$d/output.mp4" "$d/output.txt"
"${docker[@]}" rm "$container" </dev/null >/dev/null 2>&1 9>&-
"$@" </dev/null 9>&-
