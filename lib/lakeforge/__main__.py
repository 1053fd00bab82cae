import sys

from lakeforge.cli import main

sys.exit(main())
