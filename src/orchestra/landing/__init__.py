"""Landing finished runs: file ownership between runs and a merge queue per repository.

A run's plan names the files it owns; :func:`record_claims` keeps them, and
:func:`overlaps` names the other unlanded runs owning the same files. Finished branches
land through the queue (:func:`enqueue`, :class:`Lander`): one lander per repository at a
time, each branch rebased onto the target, tested there with the repository's own test
command, and the target fast-forwarded only when green. See ``docs/merge-queue.md``.
"""

from orchestra.landing.claims import claimed_files, overlaps, record_claims, repository_key
from orchestra.landing.errors import LandingError
from orchestra.landing.lander import Lander, Outcome, fast_forward
from orchestra.landing.queue import (
    QueueEntry,
    acquire,
    drop,
    enqueue,
    entries,
    find_run,
    get_entry,
    holder_id,
    queue_run,
    release,
    run_branch,
    target_branch,
)

__all__ = [
    "Lander",
    "LandingError",
    "Outcome",
    "QueueEntry",
    "acquire",
    "claimed_files",
    "drop",
    "enqueue",
    "entries",
    "fast_forward",
    "find_run",
    "get_entry",
    "holder_id",
    "overlaps",
    "queue_run",
    "record_claims",
    "release",
    "repository_key",
    "run_branch",
    "target_branch",
]
