#!/usr/bin/env bash
# Builds and installs drift_native (native/, the compiled decoder) into the given Python's
# environment. Installs a minimal Rust toolchain with rustup first when cargo is missing
# (crates and maturin come from crates.io and PyPI). Usage: scripts/native.sh .venv/bin/python
set -euo pipefail
PY=${1:?usage: scripts/native.sh PYTHON}
HERE=$(cd "$(dirname "$0")/.." && pwd)

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  echo "native: cargo not found, installing a minimal Rust toolchain with rustup"
  dir=$(mktemp -d)
  init="$dir/rustup-init"  # it acts on the name it is called by
  curl --proto '=https' --tlsv1.2 -sSf --retry 3 -o "$init" \
    https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init
  chmod +x "$init"
  "$init" -y --no-modify-path --profile minimal --default-toolchain stable >/dev/null
  rm -rf "$dir"
fi
"$PY" -m pip install -q "$HERE/native"
"$PY" -c "import drift_native" && echo "native: drift_native installed"
