"""spark-submit entry point for `lakeforge monitor` (same arguments).

    spark-submit --jars "$(python -m lakeforge.jars path)" \\
        jobs/monitor.py --dataset conf/datasets/flights.yaml
"""

import sys

from lakeforge.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("monitor", sys.argv[1:]))
