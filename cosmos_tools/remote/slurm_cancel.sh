#!/usr/bin/env bash
# shellcheck shell=bash
# BACKEND=slurm's cancel.sh. $1 = job folder. Under the queue lock: the Slurm job whose id the folder holds
# (slurm_job_id) is cancelled. One still pending is cancelled only if it still is (`scancel --state=PENDING`),
# its run.log says so and its exit_code gets 92 (CANCELLED): prints "removed". One running is cancelled (Slurm
# sends SIGTERM, the batch script writes exit_code): prints "stopped". Prints "gone" if Slurm has ended it.
# Exits 81 (LOCK_TIMEOUT), 83 (SLURM_FAILED: squeue failed, its error on stderr).
export LC_ALL=C
d=$1
q=.cosmos-tools/queue
mkdir -p "$q" || exit 83
exec 9>>"$q/lock"
flock -w 120 9 || { echo "timed out waiting for $q/lock" >&2; exit 81; }
id=$(head -c 32 "$d/slurm_job_id" 2>/dev/null) || { echo gone; exit 0; }
id=${id%$'\n'}
if ! state=$(squeue -h -j "$id" -o %T 2>&1 </dev/null); then
  case $state in *"Invalid job id"*) echo gone; exit 0 ;; esac
  printf 'squeue failed: %s\n' "$state" >&2; exit 83
fi
case $state in
  PENDING)
    scancel --state=PENDING "$id" </dev/null 2>/dev/null
    case $(squeue -h -j "$id" -o %T 2>/dev/null </dev/null) in
      '' | CANCELLED)
        printf '[cosmos-slurm] %s Slurm job %s cancelled before it started\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$id" >>"$d/run.log"
        printf '92\n' >"$d/exit_code.tmp.$$" && mv -f -- "$d/exit_code.tmp.$$" "$d/exit_code"
        echo removed
        exit 0 ;;
    esac
    if scancel "$id" </dev/null; then echo stopped; else echo gone; fi ;;
  '' | COMPLETED | CANCELLED | FAILED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | PREEMPTED | BOOT_FAIL | DEADLINE)
    echo gone ;;
  *)
    if scancel "$id" </dev/null; then echo stopped; else echo gone; fi ;;
esac
