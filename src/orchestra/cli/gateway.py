"""CLI: orchestra keys, budgets, spend, audit, secrets (accounting of the model gateway).

Thin: parse, call :mod:`orchestra.accounting`, present. The commands that run the gateway
itself (``orchestra gateway``, ``orchestra serve``) live in :mod:`orchestra.cli.serve`.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestra.accounting import (
    Accounting,
    BudgetSpec,
    KeyRecord,
    SecretBox,
    SecretStore,
    spend_report,
)
from orchestra.accounting.audit import AuditAnchor
from orchestra.accounting.money import fmt_usd
from orchestra.accounting.secrets import SECRETS_FILE
from orchestra.accounting.spend import SPEND_BY
from orchestra.accounting.store import utcnow
from orchestra.cli.acting import acting_as, acting_on_budget
from orchestra.cli.output import console, error_console, print_json
from orchestra.cli.output import fail as _fail
from orchestra.config import default_database_url, load_config
from orchestra.config.paths import existing_database_url, orchestra_home
from orchestra.errors import OrchestraError
from orchestra.store import open_database

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="orchestra.yaml to use (default: the nearest one).")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL (default: $ORCHESTRA_DATABASE_URL or SQLite under .orchestra/).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

keys_app = typer.Typer(help="Virtual API keys for the gateway.", no_args_is_help=True)
budgets_app = typer.Typer(help="Dollar budgets (hard caps with soft alerts).", no_args_is_help=True)
secrets_app = typer.Typer(help="Upstream credentials, encrypted at rest.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The hash-chained audit log of management actions.", no_args_is_help=True
)

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


def _usage_error(message: str, hint: str) -> typer.Exit:
    return _fail(message, hint)


@contextmanager
def _config_file(config_path: Path | None) -> Iterator[None]:
    """With ``--config``, the state folder follows that file (as it follows the nearest
    ``orchestra.yaml`` otherwise) for the length of the command."""
    if config_path is None:
        yield
        return
    before = os.environ.get("ORCHESTRA_CONFIG")
    os.environ["ORCHESTRA_CONFIG"] = str(config_path.expanduser().resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ORCHESTRA_CONFIG", None)
        else:
            os.environ["ORCHESTRA_CONFIG"] = before


@contextmanager
def _accounting(
    config_path: Path | None, database: str | None, *, read_only: bool = False
) -> Iterator[Accounting]:
    with _config_file(config_path):
        try:
            config = load_config(config_path)
            url = database or default_database_url()
            if read_only:
                existing_database_url(url)
            db = open_database(url)
        except OrchestraError as exc:
            raise _fail(exc) from exc
        acc = Accounting(db, config)
        try:
            yield acc
        except OrchestraError as exc:
            raise _fail(exc) from exc
        finally:
            acc.close()
            db.dispose()


def _key_json(k: KeyRecord) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": k.id,
        "prefix": k.prefix,
        "developer": k.developer,
        "team": k.team,
        "admin": k.admin,
        "name": k.name,
        "status": k.status(now),
        "created_at": k.created_at.isoformat(),
        "expires_at": k.expires_at.isoformat() if k.expires_at else None,
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        "replaced_by": k.replaced_by,
        "org": k.org.org,
        "division": k.org.division,
        "tribe": k.org.tribe,
        "squad": k.org.squad,
    }


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``2d`` or plain seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise _usage_error(f"not a duration: {text!r}", "use e.g. 90s, 30m, 1h or 2d")
    n, unit = int(m.group(1)), m.group(2) or "s"
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def _show_secret(secret: str, record: KeyRecord, as_json: bool, verb: str) -> None:
    if as_json:
        print_json({"secret": secret, "key": _key_json(record)})
        return
    out = console()
    team = f" (team {record.team})" if record.team else ""
    role = " (admin)" if record.admin else ""
    out.print(f"{verb} key {record.id} for {record.developer}{team}{role}", markup=False)
    out.print("Secret (shown once, store it now):", highlight=False)
    print(secret)


@keys_app.command("create")
def keys_create(
    developer: Annotated[str, typer.Option("--developer", help="Developer the key belongs to.")],
    team: Annotated[
        str | None, typer.Option("--team", help="Team (squad) the calls are charged to.")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May use management endpoints.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="A label, e.g. the machine.")] = None,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create a key; its secret is shown once and stored only as a hash."""
    with _accounting(config_path, database) as acc:
        actor = acting_as(acc.config, "manage_org" if admin else "manage_keys", team)
        secret, record = acc.keys.create(developer, team, admin=admin, name=name, actor=actor)
    _show_secret(secret, record, as_json, "Created")


@keys_app.command("list")
def keys_list(
    include_revoked: Annotated[
        bool, typer.Option("--all/--active", help="Include revoked keys.")
    ] = True,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """List keys (prefix only, never the secret)."""
    with _accounting(config_path, database, read_only=True) as acc:
        records = acc.keys.list(include_revoked=include_revoked)
    if as_json:
        print_json([_key_json(k) for k in records])
        return
    table = Table("id", "prefix", "developer", "team", "admin", "status", "created", "expires")
    now = utcnow()
    for k in records:
        table.add_row(
            k.id,
            k.prefix + "…",
            k.developer,
            k.team or "",
            "yes" if k.admin else "",
            k.status(now),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "",
        )
    console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (see `orchestra keys list`).")],
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Revoke a key at once."""
    with _accounting(config_path, database) as acc:
        actor = acting_as(acc.config, "manage_keys", acc.keys.get(key_id).team)
        record = acc.keys.revoke(key_id, actor=actor)
    if as_json:
        print_json(_key_json(record))
    else:
        console().print(f"Revoked key {record.id} ({record.developer}).")


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="Key id (see `orchestra keys list`).")],
    grace: Annotated[
        str, typer.Option("--grace", help="How long the old key keeps working.")
    ] = "1h",
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Issue a replacement key; the old one works for the grace period."""
    period = parse_duration(grace)
    with _accounting(config_path, database) as acc:
        actor = acting_as(acc.config, "manage_keys", acc.keys.get(key_id).team)
        secret, record = acc.keys.rotate(key_id, period, actor=actor)
    _show_secret(secret, record, as_json, f"Rotated {key_id} (old key valid for {grace}) to")


@budgets_app.command("set")
def budgets_set(
    name: Annotated[str, typer.Argument(help="Budget name.")],
    scope: Annotated[str, typer.Option("--scope", help="developer, team, org or run.")],
    subject: Annotated[
        str, typer.Option("--subject", help="Developer, team, org name (* = all) or run id.")
    ],
    cap: Annotated[str, typer.Option("--cap", help="Hard cap in US dollars.")],
    period: Annotated[
        str, typer.Option("--period", help="day, week, month (UTC) or none.")
    ] = "month",
    soft: Annotated[
        int | None, typer.Option("--soft", help="Alert at this % of the cap (0 = never).")
    ] = 80,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create or change a budget (audited)."""
    try:
        cap_usd = Decimal(cap)
    except InvalidOperation:
        raise _usage_error(
            f"--cap {cap!r} is not a number", "give dollars, e.g. --cap 250"
        ) from None
    spec = BudgetSpec(name, scope, subject, cap_usd, period, soft or None)  # type: ignore[arg-type]
    with _accounting(config_path, database) as acc:
        actor = acting_on_budget(acc.config, scope, subject)
        acc.budgets.define(spec, actor=actor, source="cli")
    console().print(f"Budget {name}: ${cap_usd} per {period} on {scope} {subject}.")


@budgets_app.command("list")
def budgets_list(
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Budgets with this period's spend, reservations in flight and reset time."""
    with _accounting(config_path, database, read_only=True) as acc:
        rows = acc.budgets.status()
    if as_json:
        print_json(
            [
                {
                    "name": s.spec.name,
                    "scope": s.spec.scope,
                    "subject": s.spec.subject,
                    "period": s.spec.period,
                    "cap_usd": str(s.spec.cap_usd),
                    "spent_usd": str(s.spent_usd),
                    "reserved_usd": str(s.reserved_usd),
                    "remaining_usd": str(s.remaining_usd),
                    "soft_pct": s.spec.soft_pct,
                    "resets_at": s.resets_at.isoformat() if s.resets_at else None,
                    "alerted": s.alerted,
                }
                for s in rows
            ]
        )
        return
    table = Table(
        "name",
        "scope",
        "subject",
        "period",
        "cap $",
        "spent $",
        "reserved $",
        "left $",
        "resets (UTC)",
    )
    for s in rows:
        table.add_row(
            s.spec.name,
            s.spec.scope,
            s.spec.subject,
            s.spec.period,
            fmt_usd(s.spec.cap_usd),
            fmt_usd(s.spent_usd),
            fmt_usd(s.reserved_usd),
            fmt_usd(s.remaining_usd),
            f"{s.resets_at:%Y-%m-%d %H:%M}" if s.resets_at else "-",
        )
    console().print(table)


@budgets_app.command("remove")
def budgets_remove(
    name: Annotated[str, typer.Argument(help="Budget name.")],
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Delete a budget (audited)."""
    with _accounting(config_path, database) as acc:
        current = acc.budgets.status(name)
        spec_of = current[0].spec if current else None
        actor = (
            acting_on_budget(acc.config, spec_of.scope, spec_of.subject)
            if spec_of is not None
            else acting_as(acc.config, "change_budget")
        )
        acc.budgets.remove(name, actor=actor)
    console().print(f"Removed budget {name}.")


def spend(
    by: Annotated[
        str, typer.Option("--by", help=f"Group by: {', '.join(SPEND_BY)}.")
    ] = "developer",
    period: Annotated[
        str,
        typer.Option("--period", help="today, week, month, all or YYYY-MM-DD..YYYY-MM-DD (UTC)."),
    ] = "month",
    developer: Annotated[
        str | None, typer.Option("--developer", help="Only this developer.")
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="Only this team (any level).")] = None,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Spend from the ledger, grouped by developer, team, agent, model or day."""
    with _accounting(config_path, database, read_only=True) as acc:
        report = spend_report(acc.store, by=by, period=period, developer=developer, team=team)
    if as_json:
        print_json(report.to_json())
        return
    table = Table(
        by,
        "calls",
        "input",
        "output",
        "cache read",
        "cache write",
        "cost $",
        title=f"Spend by {by}, period {period}",
    )
    for r in report.rows:
        table.add_row(
            r.group or "(none)",
            str(r.requests),
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            f"{r.cache_read_tokens:,}",
            f"{r.cache_write_tokens:,}",
            fmt_usd(r.cost_usd),
        )
    table.add_row(
        "total", str(report.total_requests), "", "", "", "", fmt_usd(report.total_usd), style="bold"
    )
    console().print(table)


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option("--limit", help="Newest N entries.")] = 50,
    action: Annotated[
        str | None, typer.Option("--action", help="Only actions starting with this.")
    ] = None,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Management actions, newest first."""
    with _accounting(config_path, database, read_only=True) as acc:
        entries = acc.audit.list(limit=limit, action=action)
    if as_json:
        print_json(
            [
                {
                    "seq": e.seq,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "details": e.details,
                    "hash": e.hash,
                }
                for e in entries
            ]
        )
        return
    table = Table("#", "at (UTC)", "actor", "action", "target", "details")
    for e in entries:
        details = ", ".join(f"{k}={v}" for k, v in sorted(e.details.items()) if v is not None)
        table.add_row(str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target, details)
    console().print(table)


AnchorOption = Annotated[
    Path | None,
    typer.Option(
        "--anchor",
        help="A head exported earlier with `orchestra audit anchor --output FILE`: the chain "
        "must still hold it (catches the newest entries removed together with the head).",
    ),
]


def _anchor(path: Path | None) -> tuple[str, AuditAnchor] | None:
    if path is None:
        return None
    try:
        return f"the anchor {path}", AuditAnchor.read(path)
    except OrchestraError as exc:
        raise _fail(exc) from exc


@audit_app.command("verify")
def audit_verify(
    anchor: AnchorOption = None,
    as_json: JsonOption = False,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Check the hash chain, its head, the checkpoint file and an exported anchor; exit 1
    and name the first changed or missing entry."""
    expected = _anchor(anchor)
    with _accounting(config_path, database, read_only=True) as acc:
        result = acc.audit.verify(anchor=expected)
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "checked": result.checked,
                "first_bad_index": result.first_bad_index,
                "reason": result.reason,
            }
        )
    elif result.ok:
        against = f" (against {', '.join(result.anchors)})" if result.anchors else ""
        console().print(
            f"audit log intact: {result.checked} entries verified{against}", highlight=False
        )
    else:
        error_console().print(f"[bold red]audit log broken:[/] {result.reason}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the anchor to this file (default: print)."),
    ] = None,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Export the chain's head (sequence and hash) to keep outside the database; give it
    back to `orchestra audit verify --anchor FILE` later."""
    with _accounting(config_path, database, read_only=True) as acc:
        head = acc.audit.head()
    if output is None:
        print_json(head.to_json())
        return
    head.write(output)
    console().print(f"Wrote the anchor of entry {head.seq} to {output}.", markup=False)


@audit_app.command("reseal")
def audit_reseal(
    anchor: AnchorOption = None,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Rebuild a lost head row from the newest entry (audited). Refused when entries are
    changed or missing, or when the checkpoint or anchor records a longer chain."""
    expected = _anchor(anchor)
    with _accounting(config_path, database) as acc:
        entry = acc.audit.reseal(acting_as(acc.config, "manage_audit"), anchor=expected)
    if entry is None:
        console().print("audit log intact: nothing to reseal")
    else:
        console().print(f"Resealed the audit log (entry {entry.seq} records it).")


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="Name providers refer to (api_key_secret).")],
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Store an upstream credential encrypted; the value is read from stdin or a hidden prompt
    (never from the command line, where other users could see it)."""
    if not _SECRET_NAME.match(name):
        raise _usage_error(f"invalid secret name {name!r}", "use letters, digits, - and _")
    value = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("value: ")
    if not value:
        raise _usage_error(
            "no value given", "pipe it in: `printenv KEY | orchestra secrets set NAME`"
        )
    with _accounting(config_path, database) as acc, acc.audit.transaction() as audit:
        audit.append(
            acting_as(acc.config, "manage_secrets"), "secret.set", name, {}
        )  # not committed if the store fails
        SecretStore(SecretBox.from_home()).set(name, value)
    console().print(f"Stored secret {name} (encrypted).", markup=False)


@secrets_app.command("list")
def secrets_list(as_json: JsonOption = False) -> None:
    """Names of the stored credentials (never their values)."""
    try:
        # Nothing stored yet: answer without creating the encryption key.
        stored = (orchestra_home() / SECRETS_FILE).exists()
        names = SecretStore(SecretBox.from_home()).names() if stored else []
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if as_json:
        print_json(names)
    else:
        for n in names:
            console().print(n, markup=False)


@secrets_app.command("remove")
def secrets_remove(
    name: Annotated[str, typer.Argument(help="Secret name.")],
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Delete a stored credential (audited)."""
    with _accounting(config_path, database) as acc, acc.audit.transaction() as audit:
        audit.append(
            acting_as(acc.config, "manage_secrets"), "secret.remove", name, {}
        )  # not committed if nothing goes
        if not SecretStore(SecretBox.from_home()).delete(name):
            raise _usage_error(f"no stored secret named {name!r}", "see `orchestra secrets list`")
    console().print(f"Removed secret {name}.", markup=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(budgets_app, name="budgets")
    app.add_typer(audit_app, name="audit")
    app.add_typer(secrets_app, name="secrets")
    app.command("spend")(spend)
