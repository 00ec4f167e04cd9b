"""``python -m bench.analytics [--rows N] [--db sqlite|postgresql|both]``."""

from __future__ import annotations

import sys

from bench.analytics.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
