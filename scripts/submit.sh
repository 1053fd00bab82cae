#!/usr/bin/env bash
# spark-submit one job to a cluster: builds dist/lakeforge-<version>.zip for
# --py-files and passes the cached Delta jars with --jars.
#   SPARK_MASTER=spark://127.0.0.1:7077 scripts/submit.sh pipeline -- \
#       --dataset conf/datasets/flights.yaml --env cluster --retrain-on-drift
# `scripts/submit.sh JOB --print -- ...` shows the spark-submit line instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh" >/dev/null
cd "$root"
exec "${LAKEFORGE_VENV:-$root/.venv}/bin/python" -m lakeforge.deploy.submit "$@"
