#!/usr/bin/env bash
# shellcheck shell=bash
# Run on the GPU box as ``bash -c TEXT sync_list FOLDER RUN_PYTHON SCRIPT`` in front of sync_list.py (SCRIPT is
# its text, RUN_PYTHON the shell text that starts the box's python, sync.RUN_PYTHON; FOLDER and the answer are
# its own): every regular file under FOLDER as "<size> <path relative to FOLDER>\0",
# temporary *.cosmos-part files left out; exit 88 (codes.py NOT_A_FOLDER) if FOLDER is not a folder. GNU find
# answers without python's start (about 15 ms); a find without -printf (BusyBox) leaves it to sync_list.py.
# Like os.walk there, find skips what it cannot read and follows no symlink below FOLDER.
set -u
[ -d "$1" ] || exit 88
if find "$1" -maxdepth 0 -printf "" 2>/dev/null; then  # a find with -printf
  find -H "$1" -type f ! -name '*.cosmos-part' -printf '%s %P\0' 2>/dev/null
  exit 0
fi
exec sh -c "$2" sh -c "$3" "$1"
