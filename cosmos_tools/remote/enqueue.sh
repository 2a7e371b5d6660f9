#!/usr/bin/env bash
# shellcheck shell=bash
# $1 = staging folder (the job's files, written by write.sh), $2 = the job's own folder (outputs/runs/<leaf>),
# $3 = the prompt's "latest" link (outputs/<name> or outputs/<name>_upscaled), $4 = container, $5 = the text of
# queue_runner.sh, $6 = number of docker words, then the full `docker run` argv (docker words first).
# Under the queue lock (.cosmos-tools/queue/lock): refuse (exit 90 RUN_EXISTS, staging removed) when the job
# folder exists already: a run folder is never reused; else move the staging folder to the job folder, point
# the link at it (a temporary link renamed over the old one), take the next number of the counter and write
# the job file pending/<number, 12 digits> atomically: folder, container, number of docker words, argv, each
# followed by NUL (no shell text). Then, if no runner holds runner.lock, start one (setsid, nohup, its own log,
# nothing tied to this SSH session). Prints the number of jobs ahead (running included).
# Other exits: 80 SETUP_FAILED, 81 LOCK_TIMEOUT (codes.py).
export LC_ALL=C
staging=$1 d=$2 link=$3 container=$4 runner=$5 nd=$6; shift 6
q=.cosmos-tools/queue
mkdir -p "$q/pending" "$q/running" "$q/done" "${d%/*}" || exit 80
for tool in flock setsid nohup; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed on the GPU box (util-linux, coreutils)" >&2; exit 80; }
done
exec 9>>"$q/lock"
flock -w 120 9 || { echo "timed out waiting for $q/lock" >&2; exit 81; }
if [ -e "$d" ] || [ -L "$d" ]; then rm -rf -- "$staging"; exit 90; fi
if [ -d "$link" ] && [ ! -L "$link" ]; then
  echo "$link is a folder, not the link to the latest run; move it away" >&2; exit 80
fi
mv -T -- "$staging" "$d" || exit 80
tmp="$link.cosmos-link.$$"
ln -s -- "runs/${d##*/}" "$tmp" && mv -T -- "$tmp" "$link" || exit 80
last=$(cat "$q/counter" 2>/dev/null) || last=0
case $last in ''|*[!0-9]*) echo "$q/counter holds no number; remove it (numbering restarts)" >&2; exit 80 ;; esac
next=$(( 10#$last + 1 ))
job=$(printf '%012d' "$next")
while [ -e "$q/pending/$job" ] || [ -e "$q/running/$job" ] || [ -e "$q/done/$job" ]; do
  next=$(( next + 1 )) && job=$(printf '%012d' "$next")
done
printf '%s\n' "$next" >"$q/counter.tmp" && mv -f -- "$q/counter.tmp" "$q/counter" || exit 80
printf '%s\0' "$d" "$container" "$nd" "$@" >"$q/.new-$job" && mv -f -- "$q/.new-$job" "$q/pending/$job" || exit 80
ahead=-1
for f in "$q"/pending/* "$q"/running/*; do [ -e "$f" ] && ahead=$(( ahead + 1 )); done
exec 8>>"$q/runner.lock"
if flock -n 8; then
  exec 8>&-
  setsid nohup bash -c "$runner" cosmos-queue-runner </dev/null >>"$q/runner.log" 2>&1 9>&- &
fi
printf '%s\n' "$ahead"
