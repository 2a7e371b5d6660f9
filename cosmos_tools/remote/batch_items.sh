#!/usr/bin/env bash
# shellcheck shell=bash
# The lines of batch jobs, for experiments re-attaching and for status, queue and attach.
# $@ = batch job folders (outputs/batches/runs/<batch id>). Prints, for each, its items.json (written with the
# job's files: one object per line of the batch, with its run folder and its prompt's latest link), then NUL;
# nothing but the NUL when the folder has none.
for d; do
  if [ -f "$d/items.json" ]; then cat -- "$d/items.json"; fi
  printf '\0'
done
