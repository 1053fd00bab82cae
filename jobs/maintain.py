"""spark-submit entry point for `lakeforge maintain` (same arguments), run on
a schedule of its own (weekly at least), not in the chain of steps:

    spark-submit --jars "$(python -m lakeforge.jars path)" \\
        --py-files dist/lakeforge-VERSION.zip jobs/maintain.py --dataset conf/datasets/flights.yaml
"""

import sys
from pathlib import Path

try:
    from lakeforge.cli import run_job
except ImportError:  # a plain checkout (Databricks workspace files): the library is in lib/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from lakeforge.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("maintain", sys.argv[1:]))
