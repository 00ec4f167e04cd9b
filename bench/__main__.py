"""Run every benchmark under ``bench/`` (``make bench``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.ispkg)
    if not names:
        print("no benchmarks yet")
        return 0
    for name in names:
        module = importlib.import_module(f"bench.{name}.run")
        print(f"== bench/{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
