"""The driver's progress lines, on stderr."""

import sys


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)
