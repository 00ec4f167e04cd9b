"""The survey form's answer: ``POST /dashboard/surveys/{round}/answer``.

The signed-in developer answers as themselves (the session cookie or a bearer credential;
never a name from the form). Cross-site requests are refused twice over: the session
cookie is ``SameSite=Lax`` (a cross-site form post carries none), and a request whose
``Origin`` is not this server's is refused before anything is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, quote, urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from orchestra.analytics import QUESTIONS, InvalidAnswer, answer_survey
from orchestra.errors import OrchestraError
from orchestra.identity import ANY_UNIT, NotAuthenticated, register_action
from orchestra.server.api import ApiContext
from orchestra.server.api.endpoint import status_of
from orchestra.server.dashboard.render import error_page

ANSWER_SURVEY = register_action(
    "answer_survey", frozenset({"lead", "developer"}), mutating=True
).name
"""Answering a survey round as oneself (developers and leads; admins too)."""

MAX_FORM = 16 * 1024


def _scores(body: bytes) -> dict[str, int]:
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    scores = {}
    for name in QUESTIONS:
        text = fields.get(name, "")
        if not text.lstrip("-").isdigit():
            low, high, _ = QUESTIONS[name]
            raise InvalidAnswer(f"{name} is missing or not a whole number", hint=f"{low}-{high}")
        scores[name] = int(text)
    return scores


def _same_origin(request: Request) -> bool:
    """No ``Origin`` (not a browser's cross-site post), or one naming this host. The scheme
    is not compared: behind a proxy ending TLS the browser's ``https`` origin reaches the
    server as plain HTTP with the same ``Host``."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.url.netloc


async def answer(
    api: ApiContext, nav: Sequence[tuple[str, str, str]], request: Request
) -> Response:
    """Record the signed-in developer's answer, then show the round again."""
    round_id = request.path_params["round"]
    who = "nobody"
    try:
        if not _same_origin(request):
            return error_page(
                403, "cross-site answers are refused", "answer from the dashboard", who, nav
            )
        body = await request.body()
        if len(body) > MAX_FORM:
            return error_page(413, "the answer is too large", None, who, nav)
        identity = await api.authenticate(request.headers, request.cookies)
        api.authorizer.require(identity, ANSWER_SURVEY, ANY_UNIT)
        who = identity.principal.id
        scores = _scores(body)
        database = api.orchestra().database
        await anyio.to_thread.run_sync(lambda: answer_survey(database, who, round_id, **scores))
    except NotAuthenticated as exc:
        return error_page(401, exc.message, exc.hint, who, nav)
    except OrchestraError as exc:
        return error_page(status_of(exc), exc.message, exc.hint, who, nav)
    return RedirectResponse(f"/dashboard/surveys/{quote(round_id, safe='')}?answered=1", 303)
