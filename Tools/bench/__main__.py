"""`python Tools/bench run ...` and `python -S Tools/bench wait-ready ...` (see bench/__init__.py)."""

import sys
from pathlib import Path

# The folder Tools/ instead of Tools/bench, so that `bench` and `pets` are packages.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.cli import main  # noqa: E402

sys.exit(main())
