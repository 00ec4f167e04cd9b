"""All accounting components over one database, built from ``orchestra.yaml``."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from orchestra.accounting.alerts import BudgetAlerts
from orchestra.accounting.audit import AuditLog
from orchestra.accounting.budgets import BudgetBook, LeasePolicy, specs_from_config
from orchestra.accounting.keys import KeyStore, OrgResolver
from orchestra.accounting.ledger import Ledger, LedgerEntry
from orchestra.accounting.limits import RateLimit, RateLimiter, RateLimitPolicy
from orchestra.accounting.pricing import PriceTable
from orchestra.accounting.store import AccountingStore, Clock, utcnow
from orchestra.config import OrgNames
from orchestra.config.gateway import BudgetLeaseSettings, LimitsConfig, RateLimitConfig
from orchestra.config.schema import OrchestraConfig
from orchestra.store import Database


def _limit(c: RateLimitConfig) -> RateLimit:
    return RateLimit(rpm=c.rpm, tpm=c.tpm)


def policy_from_config(limits: LimitsConfig) -> RateLimitPolicy:
    """The rate-limit policy described by ``gateway.limits``."""
    return RateLimitPolicy(
        key=_limit(limits.key),
        developer=_limit(limits.developer),
        team=_limit(limits.team),
        developers={k: _limit(v) for k, v in limits.developers.items()},
        teams={k: _limit(v) for k, v in limits.teams.items()},
    )


def lease_policy(settings: BudgetLeaseSettings) -> LeasePolicy | None:
    """The budget lease policy ``gateway.budget_leases`` describes (``None``: no leases)."""
    if not settings.enabled:
        return None
    return LeasePolicy(
        calls=settings.calls,
        fraction=settings.fraction,
        exact_below=settings.exact_below,
        max_usd=Decimal(str(settings.max_usd)) if settings.max_usd is not None else None,
        idle_s=settings.idle_s,
        max_age_s=settings.max_age_s,
    )


class Accounting:
    """Keys, prices, budgets, limits, ledger and audit sharing one writer and database.

    ``start()`` at process start: syncs ``gateway.budgets`` into the database, reconciles
    streams left unfinished by a crashed process and reclaims stale reservations.
    """

    def __init__(
        self,
        db: Database | AccountingStore,
        config: OrchestraConfig | None = None,
        *,
        clock: Clock = utcnow,
        webhook_transport: httpx.BaseTransport | None = None,
        org_resolver: OrgResolver | None = None,
        journal_dir: Path | None = None,
        pepper: bytes | None = None,
        home: Path | None = None,
    ) -> None:
        self.config = config or OrchestraConfig()
        gw = self.config.gateway
        self.store = AccountingStore.of(db)
        # The state folder (default: orchestra_home()) holds the key pepper, the audit
        # checkpoint and the ledger's journal.
        self.audit = AuditLog(self.store, clock=clock, home=home)
        self.prices = PriceTable.load(
            gw.price_file, models=self.config.models, providers=self.config.providers
        )
        self.alerts = BudgetAlerts(gw.budget_webhook, transport=webhook_transport)
        names = OrgNames.of(self.config.organisation)
        self.budgets = BudgetBook(
            self.store,
            audit=self.audit,
            alerts=self.alerts,
            clock=clock,
            reservation_ttl=timedelta(seconds=gw.reservation_ttl_s),
            leases=lease_policy(gw.budget_leases),
            names=names,
        )
        self.keys = KeyStore(
            self.store,
            audit=self.audit,
            org_resolver=org_resolver,
            names=names,
            clock=clock,
            cache_ttl_s=gw.key_cache_ttl_s,
            pepper=pepper,
            home=home,
        )
        self.limits = RateLimiter.for_database(
            policy_from_config(gw.limits), self.store, shared=gw.limits.shared
        )
        self.ledger = Ledger(
            self.store,
            prices=self.prices,
            budgets=self.budgets,
            journal_dir=journal_dir
            if journal_dir is not None or home is None
            else home / "ledger-journal",
            clock=clock,
            audit=self.audit,
        )

    def start(self) -> list[LedgerEntry]:
        """Sync configured budgets, reconcile crashed streams, expire stale holds."""
        self.budgets.sync(specs_from_config(self.config.gateway.budgets))
        reconciled = self.ledger.reconcile_incomplete()
        self.budgets.expire_stale()
        return reconciled

    def close(self) -> None:
        """Flush pending writes and stop background threads (the database stays open)."""
        self.ledger.close()
        self.keys.close()
        self.budgets.close()  # unused budget leases go back
        self.store.close()
        self.alerts.close()
