#!/usr/bin/env bash
# shellcheck shell=bash
# The queue runner, started by enqueue.sh in REMOTE_DIR (setsid, nohup: no SSH session behind it). It holds
# .cosmos-tools/queue/runner.lock for its whole life (a second one exits at once). Loop: a job left in
# running/ by a runner that died is adopted (waited for, not started again); else, under the queue lock, the
# oldest job of pending/ moves to running/ and its `docker run -d` argv runs (the lock is held until docker
# answers, so a cancel sees it either queued or started); if that fails, a stopped leftover container of its
# name is removed (docker rm, which leaves a running one alone) and docker run tried once more: no docker rm
# between two jobs in the usual case. If docker run fails, its first lines go into the job's run.log and
# exit_code gets 91 (DOCKER_RUN_FAILED). Then it waits until the job's exit_code exists or its container is
# gone (exit_code polled every 0.05 s, docker every 2 s), moves the job file to done/ (the last 50 kept) and
# takes the next.
# With nothing pending for 60 s it exits, deciding so under the queue lock: an enqueue either sees it alive
# and the job is taken, or sees it gone and starts a new runner. Lines "<epoch> started|ended JOB ..." go to
# its log (runner.log), for people and bench/queue_gap.py.
export LC_ALL=C
q=.cosmos-tools/queue
exec 8>>"$q/runner.lock"
flock -n 8 || exit 0
exec 9>>"$q/lock"
# the time without a fork where bash has it (5.0+)
note() { printf '%s %s\n' "${EPOCHREALTIME:-$(date +%s.%N)}" "$*"; }
# pause SECONDS without a fork: a read that times out on a pipe this shell keeps open for writing
exec 7<> <(:)
pause() { read -r -t "$1" -u 7 _ || :; }
# oldest FOLDER: the first job file's name in FOLDER into $found ("" if none), without a subshell
oldest() { local f; found=''; for f in "$1"/*; do [ -e "$f" ] && { found=${f##*/}; return; }; done; }
note "runner $$ up"
idle=0
while :; do
  oldest "$q/running"
  job=$found adopted=1
  if [ -z "$job" ]; then
    oldest "$q/pending"
    if [ -z "$found" ]; then
      idle=$(( idle + 1 ))
      if [ "$idle" -ge 600 ]; then
        flock 9
        oldest "$q/pending"
        [ -z "$found" ] && { note "runner $$ idle for 60 s: exits"; exit 0; }
        flock -u 9
      fi
      pause 0.1
      continue
    fi
    adopted=0
    flock 9
    oldest "$q/pending"
    job=$found
    if [ -z "$job" ] || ! mv -- "$q/pending/$job" "$q/running/$job"; then flock -u 9; continue; fi
  fi
  idle=0
  mapfile -d '' fields <"$q/running/$job"
  d=${fields[0]} container=${fields[1]} nd=${fields[2]}
  argv=("${fields[@]:3}")
  docker=("${argv[@]:0:nd}")
  if [ "$adopted" = 0 ]; then
    if out=$("${argv[@]}" </dev/null 2>&1) \
      || { "${docker[@]}" rm "$container" </dev/null >/dev/null 2>&1 && out=$("${argv[@]}" </dev/null 2>&1); }; then
      note "started $job $container"
    else
      rc=$?
      { printf '[cosmos-queue] %s docker run failed (exit %s); its first lines:\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rc"
        printf '%s\n' "$out" | head -n 12; } >>"$d/run.log"
      printf '91\n' >"$d/exit_code.tmp.$$" && mv -f -- "$d/exit_code.tmp.$$" "$d/exit_code"
      note "docker run failed $job exit $rc"
    fi
    flock -u 9
  else
    note "adopted $job $container"
  fi
  polls=0
  while [ ! -e "$d/exit_code" ]; do
    polls=$(( polls + 1 ))
    if [ $(( polls % 40 )) = 0 ] && names=$("${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' </dev/null 2>/dev/null); then
      if ! printf '%s\n' "$names" | grep -qxF -- "$container"; then
        sleep 1
        [ -e "$d/exit_code" ] || { note "lost $job: the container is gone without an exit code"; break; }
      fi
    fi
    pause 0.05
  done
  note "ended $job"
  mv -f -- "$q/running/$job" "$q/done/$job"
  set -- "$q"/done/*
  if [ "$#" -gt 50 ]; then rm -f -- "${@:1:$#-50}"; fi
done
