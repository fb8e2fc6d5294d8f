#!/usr/bin/env bash
# Installs everything the tests need (Debian packages and the Python test extras), then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real components the tests run against: Prometheus (and promtool), and Chromium for the
# gateway's web page (driven headless over its debugging protocol).
debian_packages=(prometheus chromium)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Debian package starts its own Prometheus on :9090; tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi

scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/mypy shared services pluto benchmarks
exec .venv/bin/pytest -q "$@"
