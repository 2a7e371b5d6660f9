#!/usr/bin/env bash
# shellcheck shell=bash
# $1 = staging folder (the job's files, written by write.sh), $2 = the job's own folder (outputs/runs/<leaf>),
# $3 = the prompt's "latest" link (outputs/<name> or outputs/<name>_upscaled), $4 = container, $5 = number of
# docker words, then the full `docker run` argv (docker words first). Under the GPU lock: refuse (exit 83 BUSY,
# running names on stdout) when a job runs; refuse (exit 90 RUN_EXISTS, staging removed) when the job folder
# exists already: a run folder is never reused; else move the staging folder to the job folder, point the
# link at it (a temporary link renamed over the old one), remove a stopped leftover container of that name
# (one that was never auto-removed) and start the container. Other exits: 80 SETUP_FAILED, 81 LOCK_TIMEOUT,
# 82 DOCKER_FAILED (codes.py), or docker run's own.
staging=$1 d=$2 link=$3 container=$4 nd=$5; shift 5
docker=("${@:1:nd}")
mkdir -p .cosmos-tools "${d%/*}" || exit 80
command -v flock >/dev/null || { echo "flock is not installed on the GPU box (util-linux)" >&2; exit 80; }
exec 9>>.cosmos-tools/gpu.lock
flock -w 120 9 || { echo "timed out waiting for .cosmos-tools/gpu.lock" >&2; exit 81; }
if ! names=$("${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' 2>&1 </dev/null 9>&-); then
  printf 'docker ps failed: %s\n' "$names" >&2; exit 82
fi
if [ -n "$names" ]; then printf '%s\n' "$names"; exit 83; fi
if [ -e "$d" ] || [ -L "$d" ]; then rm -rf -- "$staging"; exit 90; fi
if [ -d "$link" ] && [ ! -L "$link" ]; then
  echo "$link is a folder, not the link to the latest run; move it away" >&2; exit 80
fi
mv -T -- "$staging" "$d" || exit 80
tmp="$link.cosmos-link.$$"
ln -s -- "runs/${d##*/}" "$tmp" && mv -T -- "$tmp" "$link" || exit 80
"${docker[@]}" rm "$container" </dev/null >/dev/null 2>&1 9>&-
"$@" </dev/null 9>&-
