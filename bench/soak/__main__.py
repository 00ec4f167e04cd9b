"""``python -m bench.soak``: the soak (see :mod:`bench.soak.run`)."""

from __future__ import annotations

import sys

from bench.soak.run import main

if __name__ == "__main__":
    sys.exit(main())
