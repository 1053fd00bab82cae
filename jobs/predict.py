"""spark-submit entry point for `lakeforge predict` (same arguments).

    spark-submit --jars "$(python -m lakeforge.jars path)" \\
        jobs/predict.py --dataset conf/datasets/flights.yaml
"""

import sys

from lakeforge.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("predict", sys.argv[1:]))
