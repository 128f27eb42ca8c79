"""A custom Junction filter: every request names its team, and each team has a token budget.

- A request without the ``x-team`` header is answered 401, one from a team not in ``teams``
  403, both in the client's own dialect (Anthropic or OpenAI error shape).
- The request's ``max_tokens`` (or OpenAI's ``max_completion_tokens``) is capped at the
  team's budget, or set to it when the request leaves it out.
- The response carries the same header, naming the team.

    filters:
      - use: examples.extensions.team_budget:TeamBudget
        options:
          teams: {research: 8192, support: 1024}
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.filters.api import DataStatus, FilterCallbacks, HeadersStatus
from proxy.headers import Headers

TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")  # the second one: OpenAI clients
MAX_TEAM_CHARS = 64  # of a rejected team name, echoed in the 403


class TeamBudget:
    """One instance per request: Junction builds it as ``TeamBudget(**options)``."""

    def __init__(self, *, teams: dict[str, int], header: str = "x-team") -> None:
        # Also run once when the config loads: a ValueError or TypeError here becomes a
        # config error at filters[i].options. It runs per request too, so keep it cheap.
        if not teams:
            raise ValueError("teams: name at least one team")
        for team, budget in teams.items():
            if type(budget) is not int or budget <= 0:
                raise ValueError(f"teams.{team}: the budget must be a positive integer")
        self._teams = teams
        self._header = header.lower().encode("ascii")
        self._team: bytes | None = None
        self._body_changed = False

    # -- request: runs after the body filter, before the router --------------------------

    def set_decoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def decode_headers(self, headers: Headers, end_stream: bool) -> HeadersStatus:
        team = next((value for name, value in headers if name == self._header), None)
        if not team:
            self._cb.send_local_reply(401, f"the {self._header.decode()} header is required")
            return HeadersStatus.STOP
        budget = self._teams.get(team.decode("latin-1"))
        if budget is None:
            shown = team.decode("latin-1")[:MAX_TEAM_CHARS]
            self._cb.send_local_reply(403, f"team {shown!r} may not use this gateway")
            return HeadersStatus.STOP
        self._team = team
        # The body filter parsed the JSON body before the headers reached us; the router
        # reads this same object after us to choose the model.
        body: dict[str, Any] = self._cb.request.body_json
        capped = {
            field: budget
            for field in TOKEN_FIELDS
            if type(body.get(field)) is int and body[field] > budget
        }
        if not any(field in body for field in TOKEN_FIELDS):
            capped["max_tokens"] = budget
        if capped:
            # A new object rather than a change in place: the parsed body stays as received.
            self._cb.request.body_json = {**body, **capped}
            self._body_changed = True
        return HeadersStatus.CONTINUE

    def decode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        # The whole body arrives in one chunk. When client and provider speak the same
        # dialect these bytes go to the provider as they are, so a changed body must
        # replace them too.
        if end_stream and self._body_changed:
            self._cb.replace_decoding_data(orjson.dumps(self._cb.request.body_json))
        return DataStatus.CONTINUE

    # -- response: encoder hooks, so Junction runs this filter on the response too -------

    def set_encoder_callbacks(self, callbacks: FilterCallbacks) -> None:
        self._cb = callbacks

    def encode_headers(self, status: int, headers: Headers, end_stream: bool) -> HeadersStatus:
        if self._team is not None:
            headers.append((self._header, self._team))
        return HeadersStatus.CONTINUE

    def encode_data(self, data: bytes, end_stream: bool) -> DataStatus:
        return DataStatus.CONTINUE

    def on_destroy(self) -> None:
        pass  # nothing started, nothing to cancel
