#!/usr/bin/env bash
# Idempotent setup for a fresh machine: a virtualenv with the pinned
# dependencies, lakeforge installed in it (editable), and the Delta jars fetched
# from Maven Central into a local cache that Spark then uses with no network.
# A second run only checks that everything is in place (a few seconds).
#
# Env: LAKEFORGE_VENV (default ./.venv), PYTHON (default python3.11),
#      LAKEFORGE_JARS_DIR (default ~/.cache/lakeforge/jars).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LAKEFORGE_VENV:-$root/.venv}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating virtualenv $venv"
    "$python" -m venv "$venv"
fi

# Reinstall only when the pins or the package metadata changed.
want=$(cat "$root/requirements.lock" "$root/requirements-nodeps.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
stamp="$venv/.lakeforge-setup"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing pinned dependencies (requirements.lock)"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -r "$root/requirements.lock"
    "$venv/bin/python" -m pip install -q --no-deps -r "$root/requirements-nodeps.txt"
    "$venv/bin/python" -m pip install -q --no-deps -e "$root"
    echo "$want" > "$stamp"
fi

# Fetch (or verify) the Delta jars; checks checksums, downloads only what is missing.
"$venv/bin/python" -m lakeforge.jars fetch
