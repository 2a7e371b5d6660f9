# shellcheck shell=bash
# Shared by every script in scripts/: finds the project, prints usage (in full for --help, one synopsis for
# a missing argument) from the calling script's header comment, and hands the arguments to one
# `cosmos-tools` subcommand.
# It defines functions and variables only; sourcing it runs nothing else. config.sh is never sourced: no
# script needs a key from bash, and cosmos-tools reads it with its strict parser (one reader, one set of rules).

COSMOS_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
export COSMOS_PROJECT_ROOT="${COSMOS_PROJECT_ROOT:-$COSMOS_ROOT}"

if [[ -t 2 && -z "${NO_COLOR:-}" && "${TERM:-}" != dumb ]]; then
  _red=$'\e[31m' _reset=$'\e[0m'
else
  _red='' _reset=''
fi

# die MESSAGE: one line on stderr, exit 1.
die() {
  printf '%serror:%s %s\n' "$_red" "$_reset" "$*" >&2
  exit 1
}

# usage: print the calling script's header comment (the lines after the shebang starting with '#').
usage() {
  local script="${BASH_SOURCE[${#BASH_SOURCE[@]}-1]}"
  sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p;};}' "$script"
}

# usage_line: the header's "Usage:" synopsis as "usage: scripts/NAME ...", continuation lines joined; a second
# form of the command (a line starting with the script's name) goes on an "or:" line.
usage_line() {
  local name line out=""
  name=$(basename -- "${BASH_SOURCE[${#BASH_SOURCE[@]}-1]}")
  while IFS= read -r line; do
    if [[ -z "$out" ]]; then
      if [[ "$line" == "Usage: $name"* ]]; then out="usage: scripts/${line#Usage: }"; fi
    elif [[ -z "$line" ]]; then
      break
    else
      line="${line#"${line%%[![:space:]]*}"}"
      if [[ "$line" == "$name"* ]]; then out+=$'\n'"   or: scripts/$line"; else out+=" $line"; fi
    fi
  done < <(usage)
  printf '%s\n' "$out"
}

# need_args MIN "$@": with fewer than MIN positional arguments, print usage_line on stderr and exit 2.
# An option the header shows with a value ("--num-gpu N") is skipped together with that value.
need_args() {
  local min=$1 count=0 arg valued
  shift
  valued=" $(usage | { grep -oE -- '--[a-z][a-z0-9-]* [A-Z][A-Z_]*\b' || true; } | cut -d' ' -f1 | tr '\n' ' ')"
  while (($#)); do
    arg=$1
    shift
    case "$arg" in
      --) count=$((count + $#)); break ;;
      -?*) if [[ "$valued" == *" $arg "* ]] && (($#)); then shift; fi ;;
      *) count=$((count + 1)) ;;
    esac
  done
  if ((count < min)); then
    usage_line >&2
    exit 2
  fi
}

# has_option NAME "$@": true when --NAME or --NAME=... is among the arguments (before a "--").
has_option() {
  local name=$1 arg
  shift
  for arg in "$@"; do
    case "$arg" in
      --) return 1 ;;
      "$name" | "$name"=*) return 0 ;;
    esac
  done
  return 1
}

# help_if_asked "$@": print usage and exit 0 when -h or --help is among the arguments.
help_if_asked() {
  local arg
  for arg in "$@"; do
    case "$arg" in
      -h | --help) usage; exit 0 ;;
      --) return 0 ;;
    esac
  done
}

# cosmos_tools_bin: the cosmos-tools command (project venv first, then PATH).
cosmos_tools_bin() {
  if [[ -x "$COSMOS_ROOT/.venv/bin/cosmos-tools" ]]; then
    printf '%s\n' "$COSMOS_ROOT/.venv/bin/cosmos-tools"
  elif command -v cosmos-tools >/dev/null 2>&1; then
    command -v cosmos-tools
  else
    die "cosmos-tools is not installed; run 'make setup' in $COSMOS_ROOT"
  fi
}

# run_tool SUBCOMMAND ARGS...: replace this script with `cosmos-tools SUBCOMMAND ARGS...`.
run_tool() {
  local bin
  bin=$(cosmos_tools_bin)
  exec "$bin" "$@"
}
