# Sourced by the set-up scripts: create .venv (once) and install callsense into it.
#   install_callsense EXTRAS   e.g. install_callsense "test,dashboard"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CALLSENSE_VENV:-$ROOT/.venv}"
PY="${PYTHON3:-python3}"

ensure_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "==> creating $VENV"
        if ! "$PY" -m venv "$VENV" 2>/dev/null; then
            # Debian's python3 ships venv separately.
            echo "==> installing python3-venv"
            local sudo=(); [[ $(id -u) -ne 0 ]] && sudo=(sudo)
            "${sudo[@]}" apt-get -q update >/dev/null && "${sudo[@]}" apt-get install -y -q python3-venv >/dev/null
            "$PY" -m venv "$VENV"
        fi
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
}

install_callsense() {
    local extras="${1:-}"
    ensure_venv
    local spec="$ROOT"
    [[ -n "$extras" ]] && spec="$ROOT[$extras]"
    echo "==> installing callsense${extras:+ [$extras]} into $VENV (pip's cache makes re-runs quick)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
}
