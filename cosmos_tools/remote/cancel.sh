#!/usr/bin/env bash
# shellcheck shell=bash
# $1 = job folder, $2 = container, then the docker words. Ctrl-C and `kill` of one job. Under the queue lock:
# a job still in pending/ is removed from the queue (its file moved to done/, so `queue` lists it), its run.log
# says so and its exit_code gets 92 (CANCELLED): prints "removed". Otherwise (running in the queue, or a job started before the queue) its
# container is stopped (`docker stop -t 10`): prints "stopped", or "gone" if it was not running.
# Exits 81 (LOCK_TIMEOUT).
export LC_ALL=C
d=$1 container=$2; shift 2
docker=("$@")
q=.cosmos-tools/queue
if [ -d "$q" ]; then
  exec 9>>"$q/lock"
  flock -w 120 9 || { echo "timed out waiting for $q/lock" >&2; exit 81; }
  for f in "$q"/pending/*; do
    [ -e "$f" ] || continue
    IFS= read -r -d '' folder <"$f" || continue
    if [ "$folder" = "$d" ]; then
      mv -f -- "$f" "$q/done/${f##*/}"
      printf '[cosmos-queue] %s removed from the queue before it started\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$d/run.log"
      printf '92\n' >"$d/exit_code.tmp.$$" && mv -f -- "$d/exit_code.tmp.$$" "$d/exit_code"
      echo removed
      exit 0
    fi
  done
  exec 9>&-
fi
if "${docker[@]}" stop -t 10 "$container" </dev/null >/dev/null 2>&1; then echo stopped; else echo gone; fi
