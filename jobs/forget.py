"""spark-submit entry point for `lakeforge forget` (same arguments), run on
request, not in the chain of steps:

    spark-submit --jars "$(python -m lakeforge.jars path)" \\
        --py-files dist/lakeforge-VERSION.zip jobs/forget.py \\
        --dataset conf/datasets/customers.yaml --keys erase-2026-12.csv
"""

import sys
from pathlib import Path

try:
    from lakeforge.cli import run_job
except ImportError:  # a plain checkout (Databricks workspace files): the library is in lib/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from lakeforge.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("forget", sys.argv[1:]))
