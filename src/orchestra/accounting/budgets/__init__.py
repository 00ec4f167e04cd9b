"""Dollar budgets: hard caps enforced by reserving before a call and settling after.

- :mod:`.books`: the budget book, defining budgets and reserving/settling (:class:`BudgetBook`);
- :mod:`.specs`: what a budget is (:class:`BudgetSpec`) and its current state;
- :mod:`.reservations`: the invariant, the window rows' SQL, settling and expiry;
- :mod:`.leases`: blocks of headroom a process reserves once and grants call by call;
- :mod:`.periods`: the UTC calendar periods of a budget.
"""

from orchestra.accounting.budgets.books import BudgetBook
from orchestra.accounting.budgets.leases import LeasePolicy
from orchestra.accounting.budgets.periods import PERIODS, SCOPES, Period, Scope, period_bounds
from orchestra.accounting.budgets.reservations import Hold, Reservation
from orchestra.accounting.budgets.specs import BudgetSpec, BudgetStatus, specs_from_config

__all__ = [
    "PERIODS",
    "SCOPES",
    "BudgetBook",
    "BudgetSpec",
    "BudgetStatus",
    "Hold",
    "LeasePolicy",
    "Period",
    "Reservation",
    "Scope",
    "period_bounds",
    "specs_from_config",
]
