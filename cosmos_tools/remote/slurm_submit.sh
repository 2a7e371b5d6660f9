#!/usr/bin/env bash
# shellcheck shell=bash
# BACKEND=slurm's enqueue.sh. $1 = staging folder (the job's files, written by write.sh), $2 = the job's own folder
# (outputs/runs/<leaf>), $3 = the prompt's "latest" link, $4 = the Slurm job name (the run's container name), $5 =
# the text of slurm_job.sh, $6 = number of sbatch words, then `sbatch` and its options, then the launch argv
# (launcher, runner, command: slurm.py).
# Under the queue lock (.cosmos-tools/queue/lock), like enqueue.sh: refuse (exit 90 RUN_EXISTS, staging removed)
# when the job folder exists already; else move the staging folder there and point the link at it. Then write the
# job file .cosmos-tools/slurm/jobs/<random>: folder, job name, launch argv, each followed by NUL (no shell text),
# and the batch script beside it, and run `sbatch OPTIONS slurm_job.sh JOBFILE`. Slurm's job id goes into the job
# folder (slurm_job_id) and into .cosmos-tools/slurm/ids/<id, 12 digits> (folder, job name, NUL-separated: job_state.sh
# maps squeue's ids back to folders with it; the last 200 kept). Job files older than 30 days are removed (Slurm may
# requeue a job and run its batch script again). Prints the Slurm job id.
# Other exits: 80 SETUP_FAILED (also when sbatch refuses the job: its message on stderr and in run.log, exit_code
# 93 LAUNCH_FAILED), 81 LOCK_TIMEOUT.
export LC_ALL=C
staging=$1 d=$2 link=$3 name=$4 batch=$5 ns=$6; shift 6
sbatch=("${@:1:ns}"); shift "$ns"
q=.cosmos-tools/queue s=.cosmos-tools/slurm
mkdir -p "$q" "$s/jobs" "$s/ids" "${d%/*}" || exit 80
command -v flock >/dev/null || { echo "flock is not installed on the login node (util-linux)" >&2; exit 80; }
command -v "${sbatch[0]}" >/dev/null || { echo "${sbatch[0]} is not on the login node's PATH: is this a Slurm login node?" >&2; exit 80; }
exec 9>>"$q/lock"
flock -w 120 9 || { echo "timed out waiting for $q/lock" >&2; exit 81; }
if [ -e "$d" ] || [ -L "$d" ]; then rm -rf -- "$staging"; exit 90; fi
if [ -d "$link" ] && [ ! -L "$link" ]; then
  echo "$link is a folder, not the link to the latest run; move it away" >&2; exit 80
fi
mv -T -- "$staging" "$d" || exit 80
tmp="$link.cosmos-link.$$"
ln -s -- "runs/${d##*/}" "$tmp" && mv -T -- "$tmp" "$link" || exit 80
job=$(mktemp "$s/jobs/job.XXXXXXXX") || exit 80
printf '%s\0' "$d" "$name" "$@" >"$job" || exit 80
printf '#!/usr/bin/env bash\n%s' "$batch" >"$s/slurm_job.sh.$$" && mv -f -- "$s/slurm_job.sh.$$" "$s/slurm_job.sh" || exit 80
if ! id=$("${sbatch[@]}" "$s/slurm_job.sh" "$job" 2>"$s/sbatch.err.$$" </dev/null); then
  { printf '[cosmos-slurm] %s sbatch refused the job:\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"; cat -- "$s/sbatch.err.$$"; } >>"$d/run.log"
  printf '93\n' >"$d/exit_code.tmp.$$" && mv -f -- "$d/exit_code.tmp.$$" "$d/exit_code"
  cat -- "$s/sbatch.err.$$" >&2; rm -f -- "$s/sbatch.err.$$" "$job"
  exit 80
fi
rm -f -- "$s/sbatch.err.$$"
id=${id%%;*}
printf '%s\n' "$id" >"$d/slurm_job_id.tmp" && mv -f -- "$d/slurm_job_id.tmp" "$d/slurm_job_id" || exit 80
printf -v key '%012d' "$id" || exit 80
printf '%s\0' "$d" "$name" >"$s/ids/.new-$key" && mv -f -- "$s/ids/.new-$key" "$s/ids/$key" || exit 80
set -- "$s"/ids/*
if [ "$#" -gt 200 ]; then rm -f -- "${@:1:$#-200}"; fi
find "$s/jobs" -type f -mtime +30 -delete 2>/dev/null
printf '%s\n' "$id"
