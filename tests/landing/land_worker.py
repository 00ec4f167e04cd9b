"""A lander in its own process: ``python -m tests.landing.land_worker URL REPO START``.

Waits until the wall-clock time START (so two processes begin together), works through
REPO's queue, prints the ids of the entries it landed as JSON.
"""

from __future__ import annotations

import json
import sys
import time

from orchestra.landing import Lander
from orchestra.store import open_database


def main() -> None:
    """Run one lander."""
    url, repo, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    db = open_database(url, migrate_schema=False)
    time.sleep(max(0.0, start - time.time()))
    done = Lander(db).process(repo)
    print(json.dumps([[e.id, e.status] for e in done]))
    db.dispose()


if __name__ == "__main__":
    main()
