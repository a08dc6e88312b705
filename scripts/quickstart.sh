#!/usr/bin/env bash
# One command for a new user: install callsense and run the main job on the embedded
# defaults (no Kafka, no GPU, no network after install): the sample calls in samples/
# are converted, segmented, transcribed and scored, and a summary per call is printed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
install_callsense "dashboard"
echo "==> processing the sample calls in samples/"
"$VENV/bin/callsense" process "$ROOT/samples"
echo
echo "Next: activate the environment with 'source .venv/bin/activate', then try"
echo "  callsense show <call id>     # one call's transcript with sentiment"
echo "  callsense --help             # everything else (Kafka workers, live calls, ...)"
