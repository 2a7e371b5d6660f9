#!/usr/bin/env bash
# Usage: ssh_remote.sh [command...]
#
# Open an interactive shell on the GPU box (or run one command there) with the settings of
# config.sh, verifying its host key against known_hosts. Trust a new box first with
# `cosmos-tools trust`.
#
# Options:
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
load_config
run_tool ssh "$@"
