"""The root Typer application; each domain registers its commands from its own module."""

from __future__ import annotations

import typer

from orchestra.cli import (
    agents,
    capacity,
    claude_code,
    config_cmd,
    doctor,
    engine,
    experiments,
    gateway,
    insight,
    insight_more,
    kb,
    landing,
    org,
    policy,
    registry,
    slots,
    workers,
)
from orchestra.cli import serve as serve_cmd

app = typer.Typer(
    name="orchestra",
    help="Run teams of specialised AI coding agents: roster, gateway, pipelines, knowledge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """Run teams of specialised AI coding agents: roster, gateway, pipelines, knowledge."""


for module in (
    config_cmd,
    agents,
    org,
    registry,
    gateway,
    claude_code,
    engine,
    kb,
    serve_cmd,
    doctor,
    policy,
    insight,
    capacity,
    insight_more,
    experiments,
    landing,
    workers,
    slots,
):
    module.register(app)


@app.command()
def version() -> None:
    """Print Orchestra's version."""
    from orchestra import __version__

    typer.echo(__version__)
