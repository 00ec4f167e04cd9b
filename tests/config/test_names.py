"""Team overrides, budgets and limits in orchestra.yaml name developers and units that
exist, once the organisation is declared; the solo default checks nothing."""

from __future__ import annotations

import pytest

from orchestra.config import ConfigInvalid, parse_config

DECLARED = """organisation:
  name: acme
  units: [{name: payments, kind: squad}]
  developers: [{name: alice, unit: payments}]
"""


def test_unknown_names_are_refused_each_with_its_line_and_close_match() -> None:
    text = DECLARED + (
        "teams:\n  paymnts: {tiers: {}}\n"
        "gateway:\n"
        "  limits: {developers: {alicia: {rpm: 5}}}\n"
        "  budgets:\n    - {name: b, scope: org, subject: acme-corp, cap_usd: 3}\n"
    )
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text, environ={})
    message = str(caught.value)
    assert "orchestra.yaml:6: teams.paymnts: no unit 'paymnts'" in message
    assert "did you mean payments?" in message
    assert "gateway.limits.developers.alicia: no developer 'alicia'" in message
    assert "did you mean alice?" in message
    assert "gateway.budgets.0.subject: no organisation 'acme-corp'" in message


def test_known_names_and_an_undeclared_organisation_pass() -> None:
    parse_config(DECLARED + "teams:\n  payments: {tiers: {}}\n", environ={})
    parse_config("teams:\n  anyone: {tiers: {}}\n", environ={})  # solo: nothing declared
