"""The ledger: one entry per model call, durable, reconciled after a crash.

- :mod:`.ledger`: :class:`Ledger`, appending, journaling and reading entries;
- :mod:`.entries`: :class:`LedgerEntry` and its row and journal forms;
- :mod:`.journal`: the per-process crash journal;
- :mod:`.writer`: the ledger's rows in the group-commit writer's batches;
- :mod:`.reconciliation`: journals of dead processes turned into entries at start-up;
- :mod:`.streams`: a call journaled before its entry is stored.
"""

from orchestra.accounting.ledger.entries import OUTCOMES, LedgerEntry, Outcome
from orchestra.accounting.ledger.ledger import Ledger
from orchestra.accounting.ledger.streams import StreamRecord

__all__ = ["OUTCOMES", "Ledger", "LedgerEntry", "Outcome", "StreamRecord"]
