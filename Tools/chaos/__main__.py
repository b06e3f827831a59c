"""`python Tools/chaos ...`: the chaos run (see chaos/__init__.py and --help)."""

import sys
from pathlib import Path

# The folder Tools/ instead of Tools/chaos, so that `chaos` and `pets` are packages.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

try:
    import pika  # noqa: F401
    import requests  # noqa: F401
    import websockets  # noqa: F401
except ImportError as missing:  # pragma: no cover - a setup problem, said plainly
    sys.exit(f"chaos: {missing}. Install the requirements into the project venv:\n"
             f"  .pets/venv/bin/python -m pip install -r Tools/requirements.txt")

from chaos.cli import main  # noqa: E402

sys.exit(main())
