"""FastAPI routes that parse JSON bodies as RFC 8259 defines it: Starlette's `json.loads` takes NaN, Infinity and
`1e999` (inf), which no OCPP peer or database should get; here they are a 422 `json_invalid` like any bad JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ..ocpp.frames import loads


class StrictJsonRequest(Request):
    """A request whose `json()` refuses what JSON cannot carry (as a JSONDecodeError, which FastAPI answers 422)."""

    async def json(self) -> Any:
        """The parsed body."""
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = loads(body)
            except ValueError as e:
                raise json.JSONDecodeError(f"not RFC 8259 JSON: {e}", body.decode("utf-8", "replace")[:200], 0) \
                    from None
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute that hands its endpoint a StrictJsonRequest (set as `app.router.route_class`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The default handler, given the strict request."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
