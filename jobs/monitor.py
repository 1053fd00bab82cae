"""spark-submit entry point for `lakeforge monitor` (same arguments).

    scripts/submit.sh monitor -- --dataset conf/datasets/flights.yaml --env cluster

or by hand: spark-submit --jars "$(python -m lakeforge.jars path)" \\
    --py-files dist/lakeforge-VERSION.zip jobs/monitor.py --dataset conf/datasets/flights.yaml
"""

import sys
from pathlib import Path

try:
    from lakeforge.cli import run_job
except ImportError:  # a plain checkout (Databricks workspace files): the library is in lib/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from lakeforge.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("monitor", sys.argv[1:]))
