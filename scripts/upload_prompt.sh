#!/usr/bin/env bash
# Usage: upload_prompt.sh <prompt.json> [videos_subdir_override] [--quiet]
#
# Check the prompt, then send it and its shot folder to the same paths under REMOTE_DIR on the
# GPU box. Files already there with the same content are not sent again; every file is verified.
#
# Options:
#   --quiet           print nothing but errors
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
need_args 1 "$@"
run_tool upload "$@"
