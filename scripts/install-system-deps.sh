#!/usr/bin/env bash
# System packages for callsense on Debian 12 (bookworm), for users and for the test suite.
# Idempotent: installs only what `dpkg -s` reports missing, runs `apt-get update` only when
# the package lists are older than a day (or missing). Uses sudo only when not root.
#
#   scripts/install-system-deps.sh                      # Debian packages
#   PYTHON=.venv/bin/python scripts/install-system-deps.sh   # ... and the local Kafka jars
#
# Environment:
#   PYTHON            a python with callsense installed: also fetch the Kafka broker's jars
#                     (python -m callsense.ingest.broker.local fetch; needs java + mvn)
#   APT_UPDATE=1      force `apt-get update` (when something is missing); 0: never run it
#   EXTRA_PACKAGES    more Debian packages to install (space separated)
set -euo pipefail

PACKAGES=(ffmpeg postgresql espeak-ng sox chromium chromium-driver graphviz)
# The local Kafka broker needs a JRE and Maven (only when no java/mvn is on PATH already).
command -v java >/dev/null 2>&1 || PACKAGES+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || PACKAGES+=(maven)
# shellcheck disable=SC2206
[[ -n "${EXTRA_PACKAGES:-}" ]] && PACKAGES+=(${EXTRA_PACKAGES})

LOG="${TMPDIR:-/tmp}/callsense-install-system-deps.log"
say() { printf '==> %s\n' "$*"; }
die() { printf 'install-system-deps: %s\n' "$*" >&2; exit 1; }

# Run a command quietly; on failure show the end of its output.
quiet() {
    if ! "$@" >>"$LOG" 2>&1; then
        printf 'install-system-deps: failed: %s\n--- last lines of %s:\n' "$*" "$LOG" >&2
        tail -n 25 "$LOG" >&2
        exit 1
    fi
}

command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    || die "this script is for Debian/Ubuntu (no dpkg-query/apt-get); install by hand: ${PACKAGES[*]}"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    say "Debian packages present: ${PACKAGES[*]}"
else
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 \
            || die "not root and no sudo: run as root, or install: ${missing[*]}"
        sudo -n true 2>/dev/null || say "sudo may ask for your password"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    : >"$LOG"

    # apt-get update at most once a day: the lists folder (or the cache) changed < 1 day ago.
    fresh=0
    if compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        newest=$( (stat -c %Y /var/lib/apt/lists /var/cache/apt/pkgcache.bin 2>/dev/null || true) | sort -n | tail -1)
        (($(date +%s) - ${newest:-0} < 86400)) && fresh=1
    fi
    case "${APT_UPDATE:-auto}" in
        1 | yes | always) fresh=0 ;;
        0 | no | never) fresh=1 ;;
    esac
    if ((fresh)); then
        say "apt lists are fresh (< 1 day): skipping apt-get update"
    else
        say "apt-get update"
        quiet "${APT[@]}" update
    fi

    say "installing: ${missing[*]} (log: $LOG)"
    quiet "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
    still=()
    for pkg in "${missing[@]}"; do installed "$pkg" || still+=("$pkg"); done
    ((${#still[@]} == 0)) || die "still not installed: ${still[*]} (see $LOG)"
    say "installed: ${missing[*]}"
fi

if [[ -n "${PYTHON:-}" ]]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON is not an executable"
    say "fetching the local Kafka broker's jars"
    "$PYTHON" -m callsense.ingest.broker.local fetch \
        || die "fetching the Kafka jars failed (needs java and mvn, and Maven Central)"
fi
say "done"
