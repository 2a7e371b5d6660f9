#!/usr/bin/env bash
# shellcheck shell=bash
# The one reader of job state, for `status` and for every probe.
# $1 = scope: "all" (every job folder under outputs/ and outputs/runs/ with a run.log or an exit_code, and every
# "latest" link), "named" (the folders given) or "provenance" (named, plus what the box says about the image,
# the checkout and its GPUs), $2 = number of docker words, then the docker words (or $2 = "slurm": BACKEND=slurm),
# then (provenance) the Docker image, then (named, provenance) the job folders.
# Prints, each field followed by NUL: uid, gid, home, the names of the running cosmos-tools containers or Slurm
# jobs (one per line); the queue: the number of jobs N, then 5 fields per job (state pending, running or done;
# its number (Slurm: its job id); its folder; its container or Slurm job name; a note: Slurm's pending reason or
# state, else empty), pending/ first, then running/, then done/, each in submission order (a
# job that moves while it is read may be listed twice: the later state is the current one); for provenance 3
# more fields: `docker image inspect` of the image ("<Id> <RepoDigests as JSON>" or
# empty), `git rev-parse HEAD` of the checkout (or "unknown"), the GPU names of nvidia-smi (one per line, or
# empty); then 10 fields per folder: folder, exit code, exit_code mtime, log size, log mtime, output.mp4 size,
# guardrail flag, sha256 of controlnet_spec.json, last 15 log lines (named scopes only), link target (the
# folder is a symbolic link to it; the other fields follow the link).
# Exit 82 (codes.py DOCKER_FAILED) if docker ps fails, 83 (SLURM_FAILED) if squeue does.
scope=$1 nd=$2; shift 2
export LC_ALL=C
queue=()
printf '%s\0' "$(id -u)" "$(id -g)" "$HOME"
if [ "$nd" = slurm ]; then
  # BACKEND=slurm: the jobs slurm_submit.sh recorded (.cosmos-tools/slurm/ids/<id>) that squeue lists are the queue
  # (PENDING: pending, with Slurm's reason; any other state: running), the other recorded ones are done (with, when
  # they wrote no exit code, how they ended: slurm_end, else scontrol's or sacct's state). Ids are
  # recorded with 12 digits, so that they sort.
  if ! jobs=$(squeue -h -u "$(id -un)" -o '%i %T %r' 2>&1 </dev/null); then
    printf 'squeue failed: %s\n' "$jobs" >&2; exit 83
  fi
  names='' listed=' '
  while read -r id state reason; do
    printf -v id '%012d' "$id" 2>/dev/null || continue
    [ -f ".cosmos-tools/slurm/ids/$id" ] || continue
    { IFS= read -r -d '' folder && IFS= read -r -d '' container; } <".cosmos-tools/slurm/ids/$id" || continue
    listed+="$id "
    if [ "$state" = PENDING ]; then
      queue+=(pending "$id" "$folder" "$container" "$reason")
    else
      queue+=(running "$id" "$folder" "$container" "$state")
      [ "$state" = RUNNING ] && names+="$container"$'\n'
    fi
  done <<<"$jobs"
  for f in .cosmos-tools/slurm/ids/*; do
    [ -e "$f" ] && [ "${listed/ ${f##*/} /}" = "$listed" ] || continue
    { IFS= read -r -d '' folder && IFS= read -r -d '' container; } <"$f" || continue
    end=''
    if [ ! -e "$folder/exit_code" ]; then
      # gone without an exit code: the batch script's marker, else what Slurm still knows (scontrol, sacct)
      end=$(head -c 16 "$folder/slurm_end" 2>/dev/null) \
        || end=$(scontrol show job "$(( 10#${f##*/} ))" 2>/dev/null </dev/null | grep -o 'JobState=[A-Z_]*') \
        || end=$(sacct -n -X -P -o State -j "$(( 10#${f##*/} ))" 2>/dev/null </dev/null | head -n 1)
      end=${end#JobState=} end=${end%%[[:space:]]*}
    fi
    queue+=("done" "${f##*/}" "$folder" "$container" "$end")
  done
  printf '%s\0' "${names%$'\n'}"
else
  docker=("${@:1:nd}"); shift "$nd"
  if ! names=$("${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' 2>&1 </dev/null); then
    printf 'docker ps failed: %s\n' "$names" >&2; exit 82
  fi
  printf '%s\0' "$names"
  for state in pending running "done"; do
    for f in .cosmos-tools/queue/"$state"/*; do
      [ -e "$f" ] || continue
      { IFS= read -r -d '' folder && IFS= read -r -d '' container; } <"$f" || continue
      queue+=("$state" "${f##*/}" "$folder" "$container" "")
    done
  done
fi
printf '%s\0' "$(( ${#queue[@]} / 5 ))" "${queue[@]}"
if [ "$scope" = provenance ]; then
  image=$1; shift
  facts=''
  if [ "$nd" != slurm ]; then
    facts=$("${docker[@]}" image inspect -f '{{.Id}} {{json .RepoDigests}}' -- "$image" 2>/dev/null </dev/null) || facts=''
  fi
  code=$(git rev-parse HEAD 2>/dev/null </dev/null) || code=unknown
  gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null </dev/null) || gpus=''
  printf '%s\0' "$facts" "${code:-unknown}" "$gpus"
fi
if [ "$scope" = all ]; then
  set --
  for d in outputs/*/ outputs/runs/*/; do
    d=${d%/}
    [ "$d" = outputs/runs ] && continue
    if [ -L "$d" ] || [ -f "$d/run.log" ] || [ -f "$d/exit_code" ]; then set -- "$@" "$d"; fi
  done
fi
for d; do
  code='' when='' log=0 logged=0 out=0 blocked=0 sha='' tail='' target=''
  if [ -L "$d" ]; then target=$(readlink -- "$d"; echo x) && target=${target%?} && target=${target%$'\n'}; fi
  if [ -f "$d/exit_code" ]; then code=$(head -c 32 "$d/exit_code"); when=$(stat -c %Y "$d/exit_code"); fi
  if [ -f "$d/run.log" ]; then
    log=$(stat -c %s "$d/run.log") logged=$(stat -c %Y "$d/run.log")
    if grep -qF -e 'GUARDRAIL BLOCKED' -e 'Guardrail blocked generation' "$d/run.log"; then blocked=1; fi
    if [ "$scope" != all ]; then tail=$(tail -n 15 "$d/run.log" | tr -d '\000'); fi
  fi
  if [ -f "$d/output.mp4" ]; then out=$(stat -c %s "$d/output.mp4"); fi
  if [ -f "$d/controlnet_spec.json" ]; then sha=$(sha256sum < "$d/controlnet_spec.json") && sha=${sha%% *}; fi
  printf '%s\0' "$d" "$code" "$when" "$log" "$logged" "$out" "$blocked" "$sha" "$tail" "$target"
done
