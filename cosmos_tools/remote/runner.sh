#!/usr/bin/env bash
# shellcheck shell=bash
# Run inside the container as `bash -c TEXT cosmos-run LOG EXIT_CODE COMMAND...`. It appends the command
# output to LOG, forwards TERM/INT to the command process group (bash as PID 1 would ignore TERM; a signal
# that arrives before the launch is forwarded right after it), and writes the exit code to EXIT_CODE
# atomically when the command ends, then exits with it. `set -m` only around the launch: the command gets
# its own process group and keeps SIGINT (non-interactive bash would ignore it in background jobs).
# `${log%/*}`, not $(dirname): command substitution would eat a trailing newline of the name.
# Keep it free of single quotes: the text travels inside the docker argv and shlex.join shows it as one word.
log=$1 code=$2
shift 2
mkdir -p -- "${log%/*}" "${code%/*}"
rm -f -- "$code"
{ printf "[cosmos-run] %s started:" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"; printf " %q" "$@"; printf "\n"; } >>"$log"
child="" pending=""
forward() { if [ -n "$child" ]; then kill "-$1" -- "-$child" 2>/dev/null; else pending=$1; fi; }
trap "forward TERM" TERM
trap "forward INT" INT
set -m
"$@" >>"$log" 2>&1 </dev/null &
child=$!
set +m
if [ -n "$pending" ]; then forward "$pending"; fi
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
printf "[cosmos-run] %s exit code %s\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$rc" >>"$log"
printf "%s\n" "$rc" >"$code.tmp.$$"
mv -f -- "$code.tmp.$$" "$code"
exit "$rc"
