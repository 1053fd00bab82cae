#!/usr/bin/env bash
# A Spark standalone cluster on 127.0.0.1 from the installed pyspark: a master
# and workers as processes recorded by PID in ./.spark-cluster, stopped by PID.
#   scripts/cluster.sh start [--workers 2 --cores 1 --memory 2g --port 7077]
#   scripts/cluster.sh status
#   scripts/cluster.sh stop
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh" >/dev/null
cd "$root"
exec "${LAKEFORGE_VENV:-$root/.venv}/bin/python" -m lakeforge.deploy.cluster "$@"
