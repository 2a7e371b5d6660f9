#!/usr/bin/env bash
# shellcheck shell=bash
# Run on the GPU box as ``bash -c TEXT sync_hash RUN_PYTHON STALE OPTIONS SCRIPT PATH...`` in front of
# sync_hash.py (SCRIPT is its text, RUN_PYTHON the shell text that starts the box's python, sync.RUN_PYTHON; the
# other arguments and the answer are its own). An upload of new files finds nothing to hash:
# when no PATH names anything and no temporary upload file lies beside one, this makes the folders ("f" in
# OPTIONS) and answers "-" for each path itself, without python's start (about 6 ms on an open connection
# instead of 20-30).
# Anything else, a folder that cannot be made included, goes to sync_hash.py, which says what is wrong.
set -u
run_python=$1 stale=$2 options=$3 text=$4
shift 4

hash_in_python() {
  exec sh -c "$run_python" sh -c "$text" "$stale" "$options" "$@"
}

for path in "$@"; do
  if [ -e "$path" ] || [ -L "$path" ]; then hash_in_python "$@"; fi
  if [ "$stale" != 0 ]; then
    for part in "${path%/*}/.${path##*/}".*.cosmos-part; do
      if [ -e "$part" ] || [ -L "$part" ]; then hash_in_python "$@"; fi
    done
  fi
done
if [[ $options == *f* ]]; then
  for path in "$@"; do
    mkdir -p -- "${path%/*}" 2>/dev/null || hash_in_python "$@"
  done
fi
for path in "$@"; do
  echo -
done
