"""Handler registration: which function serves which OCPP action, sync or async, as decorator or table."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection

Payload = dict[str, Any]
HandlerResult = Payload | None | Awaitable[Payload | None]
HandlerFunc = Callable[..., HandlerResult]


@dataclass(slots=True)
class CallContext:
    """What a handler may want besides the payload: the connection (to call the peer back) and the message id."""

    connection: Connection
    message_id: str
    action: str

    @property
    def station_id(self) -> str:
        """Identity of the charging station at the other end (or this end, on the station side)."""
        return self.connection.station_id


@dataclass(slots=True, frozen=True)
class Handler:
    """A registered handler and how to call it (decided once, at registration)."""

    func: HandlerFunc
    is_async: bool
    wants_context: bool


def _wants_context(func: HandlerFunc) -> bool:
    """Whether `func` takes the CallContext: a second positional parameter without default (or *args)."""
    params = [p for p in inspect.signature(func).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    if not params:
        raise TypeError(f"handler {func!r} must take the payload as its first parameter")
    if params[0].kind is params[0].VAR_POSITIONAL:
        return True
    rest = params[1:2]
    return bool(rest) and (rest[0].kind is rest[0].VAR_POSITIONAL or rest[0].default is rest[0].empty)


class Router:
    """Action name -> handler. Handlers take `(payload)` or `(payload, ctx)`, may be sync or async, and return
    the response payload dict (None for SEND messages). Sync handlers run inline: the fast path."""

    def __init__(self, handlers: Mapping[str, HandlerFunc] | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        for action, func in (handlers or {}).items():
            self.add(action, func)

    def add(self, action: str, func: HandlerFunc) -> None:
        """Register `func` for `action` (replacing an earlier one)."""
        call_method = type(func).__call__ if not inspect.isroutine(func) else None  # a callable object
        is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call_method)
        self._handlers[action] = Handler(func, is_async, _wants_context(func))

    def on(self, action: str) -> Callable[[HandlerFunc], HandlerFunc]:
        """Decorator: `@router.on("BootNotification")` registers the function it decorates."""

        def register(func: HandlerFunc) -> HandlerFunc:
            self.add(action, func)
            return func

        return register

    def get(self, action: str) -> Handler | None:
        """The handler for `action`, if any."""
        return self._handlers.get(action)

    def __contains__(self, action: object) -> bool:
        """Whether an action has a handler (the engine answers NotSupported otherwise)."""
        return action in self._handlers

    def __iter__(self) -> Iterator[str]:
        """The actions that have handlers."""
        return iter(self._handlers)

    def __len__(self) -> int:
        """How many actions have handlers."""
        return len(self._handlers)
