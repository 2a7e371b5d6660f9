#!/usr/bin/env bash
# shellcheck shell=bash
# $1 = folder, then NAME SIZE pairs: stdin holds the files' bytes one after another (text without NUL).
# Each is written through a temporary file and a rename. Exits 86 (WRITE_FAILED) if a file cannot be
# written, 87 (SHORT_INPUT) if stdin ends early. It reads stdin to the end before it exits (the client's EOF
# must not reach a channel sshd has already freed).
export LC_ALL=C
d=$1; shift
mkdir -p -- "$d" || exit 86
while [ "$#" -ge 2 ]; do
  name=$1 size=$2; shift 2
  data=''
  [ "$size" -gt 0 ] && { IFS= read -r -d '' -N "$size" data || [ "${#data}" -eq "$size" ] || exit 87; }
  [ "${#data}" -eq "$size" ] || exit 87
  tmp=$(mktemp "$d/.cosmos-write.XXXXXX") && printf '%s' "$data" > "$tmp" && mv -f -- "$tmp" "$d/$name" || exit 86
done
cat >/dev/null
