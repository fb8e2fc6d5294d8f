#!/usr/bin/env bash
# The embedded default: installs the project into .venv, then `pluto up` (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/pluto up "$@"
