#!/usr/bin/env bash
# The test command: setup, then lint (ruff), types (mypy) and the test suite
# (pytest, real Spark + Delta). Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
venv=${LAKEFORGE_VENV:-$root/.venv}
"$venv/bin/ruff" check lib jobs tests bench deploy
"$venv/bin/ruff" format --check lib jobs tests bench deploy
"$venv/bin/mypy"
exec "$venv/bin/pytest" "$@"
