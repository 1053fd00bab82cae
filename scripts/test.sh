#!/usr/bin/env bash
# The test command: setup, then lint (ruff), types (mypy) and the test suite
# (pytest, real Spark + Delta). Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
# The JDBC tests start their own PostgreSQL server from the machine's binaries
# (Debian's postgresql package); install it when missing and we may.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test: installing PostgreSQL (Debian package) for the JDBC tests"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null; }
    else
        echo "test: PostgreSQL server binaries not found; the JDBC tests will fail (apt-get install postgresql)" >&2
    fi
fi
venv=${LAKEFORGE_VENV:-$root/.venv}
"$venv/bin/ruff" check lib jobs tests bench deploy
"$venv/bin/ruff" format --check lib jobs tests bench deploy
"$venv/bin/mypy"
exec "$venv/bin/pytest" "$@"
