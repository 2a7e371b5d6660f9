#!/usr/bin/env bash
# Usage: ssh_remote.sh [command...]
#
# Open an interactive shell on the GPU box (or run one command there) with the settings of
# config.sh, by the same route as every other command (a ~/.ssh/config alias and its ProxyJump
# hosts included), verifying each host key against known_hosts. Trust a new box (and its jump
# hosts) first with `cosmos-tools trust`. Each command word reaches the box as one word (nothing
# is re-parsed by the remote shell); for shell syntax say so: ssh_remote.sh bash -c 'nvidia-smi | head'.
# No agent forwarding.
#
# Options:
#   -h, --help        show this help
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

help_if_asked "$@"
run_tool ssh "$@"
