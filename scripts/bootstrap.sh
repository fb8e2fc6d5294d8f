#!/usr/bin/env bash
# Creates .venv and installs the project (with the given extras) into it. Idempotent.
# pip's own chatter goes to .venv/install.log; it is shown only when the install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
target="."
[ -n "$extras" ] && target=".[$extras]"
if ! { .venv/bin/python -m pip install --quiet --upgrade pip \
       && .venv/bin/python -m pip install --quiet -e "$target"; } >.venv/install.log 2>&1; then
  tail -n 40 .venv/install.log >&2
  echo "bootstrap: installing the project into .venv failed (full log: .venv/install.log)" >&2
  exit 1
fi
