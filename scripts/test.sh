#!/usr/bin/env bash
# One command for the whole test suite on a fresh Debian machine: system packages
# (ffmpeg, PostgreSQL, Chromium, espeak-ng), the Kafka broker's jars from Maven Central,
# Python dependencies, then pytest. Tests start and stop their own Kafka and PostgreSQL.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_callsense "test,riva,dashboard,eval,train,nemo"
PYTHON="$VENV/bin/python" bash "$ROOT/scripts/install-system-deps.sh"
echo "==> running the test suite"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
