# Shared by scripts/run, scripts/test and scripts/bench: make .venv and install posgate into it.
# Idempotent; reinstalls only when pyproject.toml or requirements-test.lock changed since the last
# install. Every package comes from the hashed lock (scripts/lock regenerates it); posgate itself
# is then installed editable without dependencies and without build isolation (its build tools are
# in the lock too).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.posgate-installed"
want="$(cat pyproject.toml requirements-test.lock | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  .venv/bin/python -m pip install -q --require-hashes -r requirements-test.lock
  # (setuptools' notice about editable installs is a warning: silenced)
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

ensure_demo_key() {
  # The demo firm's key pair is generated on first use; no private key lives in the repository.
  local key="$ROOT/config/demo-keys/demo_ed25519"
  if [[ ! -f "$key" ]]; then
    mkdir -p "$(dirname "$key")"
    ssh-keygen -q -t ed25519 -N '' -C 'posgate demo firm 00005' -f "$key"
    chmod 600 "$key"
  fi
}
