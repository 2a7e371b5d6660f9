#!/usr/bin/env bash
# shellcheck shell=bash
# $1 = log, $2 = exit-code file, $3 = byte offset (negative: start at the last -N lines), $4 = container,
# then the number of docker words and the docker words (or the word "slurm": BACKEND=slurm). Prints the starting
# offset on a line of its own, then copies the log from it until the exit-code file exists (exit 0). A job whose
# file is in the queue's pending/ or running/ (its first field is the job folder, the exit-code file's folder),
# or a Slurm job squeue still lists, is alive even before its log exists; otherwise the follower exits 84 (LOST)
# if the container or Slurm job is gone without an exit code, 85 (DOCKER_SILENT) if docker or squeue has not
# answered for about a minute, so a follower whose job and docker are gone never polls for ever.
exec 2>/dev/null
export LC_ALL=C
log=$1 code=$2 off=$3 container=$4 nd=$5; shift 5
docker=("$@")
# names: the running containers (docker ps) or the Slurm job's name while squeue lists it; fails if neither answers
names() {
  if [ "$nd" != slurm ]; then
    "${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' </dev/null
    return
  fi
  local id state
  id=$(head -c 32 "${code%/*}/slurm_job_id") || return 0
  state=$(squeue -h -j "${id%$'\n'}" -o %T 2>&1 </dev/null) || { case $state in *"Invalid job id"*) return 0 ;; esac; return 1; }
  case $state in '' | COMPLETED | CANCELLED | FAILED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | PREEMPTED | BOOT_FAIL | DEADLINE) ;; *) echo "$container" ;; esac
}
queued() {
  local f folder
  for f in .cosmos-tools/queue/pending/* .cosmos-tools/queue/running/*; do
    [ -e "$f" ] && IFS= read -r -d '' folder <"$f" && [ "$folder" = "${code%/*}" ] && return 0
  done
  return 1
}
if [ "$off" -lt 0 ]; then
  size=$(stat -c %s "$log" || echo 0)
  off=$(( size - $(tail -n "${off#-}" "$log" | wc -c) ))
fi
echo "$off"
polls=0 failures=0
while :; do
  finished=0; [ -e "$code" ] && finished=1
  size=$(stat -c %s "$log" || echo 0)
  if [ "$size" -lt "$off" ]; then off=0; fi
  if [ "$size" -gt "$off" ]; then tail -c "+$(( off + 1 ))" "$log" | head -c "$(( size - off ))"; off=$size; fi
  [ "$finished" = 1 ] && exit 0
  polls=$(( polls + 1 ))
  if [ $(( polls % 8 )) = 0 ] && ! queued; then
    if names=$(names); then
      failures=0
      if ! printf '%s\n' "$names" | grep -qxF -- "$container"; then
        sleep 1
        [ -e "$code" ] || exit 84
      fi
    else
      failures=$(( failures + 1 ))
      [ "$failures" -lt 30 ] || exit 85
    fi
  fi
  sleep 0.25
done
