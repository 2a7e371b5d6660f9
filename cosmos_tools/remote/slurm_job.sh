#!/usr/bin/env bash
# shellcheck shell=bash
# The batch script of every Slurm job (sbatch'ed by slurm_submit.sh in REMOTE_DIR): $1 = its job file (job folder,
# job name, launch argv, each followed by NUL). It runs the launch argv (srun/apptainer/plain, then runner.sh,
# which appends the command's output to run.log and writes command_exit_code), and then writes the job's exit_code
# atomically, the one writer of it: the command's code; 94 (TIMED_OUT) when Slurm stopped the job at its time
# limit (SLURM_TIME); 93 (LAUNCH_FAILED) when the launcher failed before the command ran (its lines are in run.log).
# On SIGTERM (scancel, time limit; SIGKILL follows after KillWait) it asks scontrol why, notes it in run.log and in
# slurm_end (timeout or cancelled), and passes the signal on.
export LC_ALL=C
mapfile -d '' fields <"$1" || exit 80
d=${fields[0]}
argv=("${fields[@]:2}")
log=$d/run.log
stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }
say() { printf '[cosmos-slurm] %s %s\n' "$(stamp)" "$*" >>"$log"; }
ended='' child=''
# shellcheck disable=SC2329  # run by the trap below
on_term() {
  if scontrol show job "$SLURM_JOB_ID" 2>/dev/null </dev/null | grep -q 'Reason=TimeLimit'; then ended=timeout; else ended=cancelled; fi
  printf '%s\n' "$ended" >"$d/slurm_end"
  if [ "$ended" = timeout ]; then say "Slurm job $SLURM_JOB_ID reached its time limit: stopping it"; else say "Slurm job $SLURM_JOB_ID cancelled"; fi
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi
}
trap on_term TERM
gpus=${CUDA_VISIBLE_DEVICES:-${SLURM_JOB_GPUS:-${SLURM_STEP_GPUS:-}}}
say "Slurm job $SLURM_JOB_ID started on $(hostname) (GPUs: ${gpus:-${SLURM_GPUS_ON_NODE:-?} allocated})"
rm -f -- "$d/command_exit_code"
"${argv[@]}" </dev/null >>"$log" 2>&1 &
child=$!
rc=1 # unknown until a wait reports it
while kill -0 "$child" 2>/dev/null; do
  wait "$child"
  rc=$?
done
wait "$child"
last=$?
# bash 5.2 can answer -1 here for a child a signal-interrupted wait already reaped (seen when scancel signals
# every process of the job): then the status the loop saw stands
case $last in -*) ;; *) rc=$last ;; esac
if [ "$ended" = timeout ]; then
  rc=94
elif [ -f "$d/command_exit_code" ]; then
  rc=$(head -c 32 "$d/command_exit_code")
elif [ -z "$ended" ]; then
  say "${argv[0]} failed (exit $rc) before the command ran; its lines are above"
  rc=93
fi
printf '%s\n' "$rc" >"$d/exit_code.tmp.$$" && mv -f -- "$d/exit_code.tmp.$$" "$d/exit_code"
exit "$rc"
