"""The asyncio shell around RpcEngine: one websocket, its handlers, our outgoing CALLs and their timeouts.

Incoming CALLs are served while our own CALL waits (async handlers run as tasks; sync handlers inline), so a
handler may itself await a CALL to the same peer without deadlock. Outgoing CALLs queue: one outstanding at a time,
and the next one leaves as soon as the answer to the last is read (no wait for the event loop to wake its caller).
Repeated warnings are rate-limited and a peer that keeps causing CALLERRORs is disconnected (flood.py).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from .engine import Answer, Event, IncomingCall, Reply, ResultErrorReceived, RpcEngine
from .errors import CallErrorReceived, CallTimeoutError, ConnectionClosedError, ErrorCode, OcppError
from .flood import CLOSE_POLICY_VIOLATION, FloodGuard, FloodPolicy
from .router import CallContext, Handler, Router
from .schemas import SchemaStore
from .versions import Version

log = logging.getLogger(__name__)


class WebSocketLike(Protocol):
    """What a Connection needs from a websocket (websockets' connections fit; so does a test double)."""

    async def send(self, message: str) -> None:
        """Send one text message."""

    async def recv(self) -> str | bytes:
        """Receive one message; raise when the connection is closed."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection."""


class _Queued:
    """One of our CALLs waiting for its turn: `turn` resolves once it is on the wire, `answer` with the reply."""

    __slots__ = ("action", "answer", "mid", "text", "turn")

    def __init__(self, mid: str, action: str, text: str, answer: asyncio.Future[dict[str, Any]],
                 turn: asyncio.Future[None]) -> None:
        self.mid, self.action, self.text, self.answer, self.turn = mid, action, text, answer, turn


class Connection:
    """An OCPP-J session with one peer over one websocket."""

    def __init__(
        self,
        ws: WebSocketLike,
        version: Version | str,
        router: Router,
        *,
        station_id: str,
        call_timeout: float = 30.0,
        max_message_size: int = 65536,
        max_concurrent_calls: int = 32,
        schemas: SchemaStore | None = None,
        on_result_error: Callable[[Connection, str, CallErrorReceived], Awaitable[None] | None] | None = None,
        flood: FloodPolicy | None = None,
    ) -> None:
        self.ws = ws
        self.router = router
        self.station_id = station_id
        self.engine = RpcEngine(version, handled=router, schemas=schemas, max_message_size=max_message_size)
        self.version = self.engine.version
        self.call_timeout = call_timeout
        self.max_concurrent_calls = max_concurrent_calls
        self.on_result_error = on_result_error
        self.data: dict[str, Any] = {}  # for the layers above (station state, CSMS session, ...)
        # (direction "rx"/"tx", frame text) of every message, for traces; empty costs nothing
        self.frame_listeners: list[Callable[[str, str], None]] = []
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._current: str | None = None  # the message id of our outstanding CALL (OCPP-J: at most one)
        self._queue: deque[_Queued] = deque()  # our CALLs waiting for their turn, oldest first
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._serve_task: asyncio.Task[None] | None = None
        self.guard = FloodGuard(flood)
        self._closing = False  # we are closing for a policy violation: received messages are dropped
        self._close_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        """Station id and version, for logs."""
        return f"<Connection {self.station_id} ocpp{self.version.value}>"

    @property
    def closed(self) -> bool:
        """Whether the websocket has closed."""
        return self._closed.is_set()

    # ----- receiving -----

    async def serve(self) -> None:
        """Read and process messages until the websocket closes; never stops on bad input."""
        try:
            while True:  # after a policy close, messages are read and dropped until the close handshake ends
                try:
                    text = await self.ws.recv()
                except Exception:  # websockets' ConnectionClosed, or the transport died
                    break
                await self.handle_text(text)
        finally:
            for kind, count in self.guard.pending_summaries().items():
                log.warning("%s: %d more %s messages were not logged", self.station_id, count, kind)
            self._mark_closed()

    def start(self) -> asyncio.Task[None]:
        """Run serve() in a background task (the station side does this; a server handler awaits serve())."""
        if self._serve_task is None:
            loop = asyncio.get_running_loop()
            self._serve_task = loop.create_task(self.serve(), name=f"ocpp-serve-{self.station_id}")
        return self._serve_task

    async def handle_text(self, text: str | bytes) -> None:
        """Process one received websocket message: dispatch, correlate, or answer with a CALLERROR."""
        if self._closing:
            return
        if self.frame_listeners:
            self._tell("rx", text if isinstance(text, str) else text.decode("utf-8", "replace"))
        try:
            ev = self.engine.receive(text)
            if type(ev) is IncomingCall:
                handler = self.router.get(ev.action)
                if handler is not None and not handler.is_async:  # the fast path: a sync handler, inline
                    out = self._run_sync(handler, ev)
                    if out is not None:
                        try:
                            if self.frame_listeners:
                                self._tell("tx", out)
                            await self.ws.send(out)
                        except Exception as e:
                            log.debug("%s: could not send an answer: %s", self.station_id, e)
                    return
                await self._dispatch(ev, handler)
            else:
                await self._other_event(ev)
        except Exception as e:  # nothing a peer sends may stop the loop
            self._log("internal error", logging.ERROR, "%s: error while processing a message", self.station_id,
                      exc_info=e)

    async def _other_event(self, ev: Event) -> None:
        """Handle every event but a CALL: answers to our CALLs, refusals, ignored messages."""
        t = type(ev)
        if t is Answer:
            await self._answer(ev)  # type: ignore[arg-type]
        elif t is Reply:
            error = ev.error  # type: ignore[union-attr]
            if error.code is not ErrorCode.NOT_SUPPORTED and self.guard.violation():
                await self._close_for_violations()
                return
            self._log("refused", logging.WARNING, "%s: refused a message: %s %s", self.station_id, error.code.value,
                      error.description)
            await self._send_quietly(ev.text)  # type: ignore[union-attr]
        elif t is ResultErrorReceived:
            self._log("refused-result", logging.WARNING, "%s: peer refused our CALLRESULT %s: %s", self.station_id,
                      ev.message_id, ev.error)  # type: ignore[union-attr]
            if self.on_result_error is not None:
                r = self.on_result_error(self, ev.message_id, ev.error)  # type: ignore[union-attr]
                if inspect.isawaitable(r):
                    await r
        else:
            self._log("ignored", logging.INFO, "%s: ignored a message (%s)", self.station_id,
                      ev.reason)  # type: ignore[union-attr]

    def _log(self, kind: str, level: int, msg: str, *args: Any, exc_info: BaseException | None = None) -> None:
        """Log a line about the peer's messages unless this kind floods (then one summary per interval)."""
        ok, ended = self.guard.should_log(kind)
        if ended:
            log.warning("%s: %d more %s messages were not logged in the last %.0f s", self.station_id, ended, kind,
                        self.guard.policy.log_interval)
        if ok:
            log.log(level, msg, *args, exc_info=exc_info)

    async def _close_for_violations(self) -> None:
        """Close with 1008: the peer caused more CALLERRORs within the window than the policy allows."""
        if self._closing:
            return
        self._closing = True
        policy = self.guard.policy
        log.warning("%s: more than %d protocol errors within %.0f s; closing the connection (1008)", self.station_id,
                    policy.max_violations, policy.violation_window)
        self._close_task = asyncio.get_running_loop().create_task(
            self._close_quietly(CLOSE_POLICY_VIOLATION, "too many protocol errors"))

    async def _close_quietly(self, code: int, reason: str) -> None:
        """Close the websocket in the background (the read loop keeps draining so the peer's close frame arrives)."""
        try:
            await self.ws.close(code, reason)
        except Exception as e:
            log.debug("%s: close failed: %s", self.station_id, e)

    async def _answer(self, ev: Answer) -> None:
        """Hand the peer's answer to the waiting call()."""
        fut = self._waiters.pop(ev.message_id, None)
        if fut is not None and not fut.done():
            if ev.error is None:
                fut.set_result(ev.payload)  # type: ignore[arg-type]
            else:
                fut.set_exception(ev.error)
        if ev.message_id == self._current:  # its turn is over: the next queued CALL leaves now
            self._current = None
            await self._next()
        if ev.reply is not None:
            await self._send_quietly(ev.reply)

    def _run_sync(self, handler: Handler, call: IncomingCall) -> str | None:
        """Run a sync handler and return the answer to send (None for a SEND, or when it went async)."""
        try:
            result = (handler.func(call.payload, CallContext(self, call.message_id, call.action))
                      if handler.wants_context else handler.func(call.payload))
            if type(result) is not dict and inspect.isawaitable(result):  # a sync callable that returned a coroutine
                self._spawn(self._finish(call, result))
                return None
        except Exception as e:
            return None if call.send else self._handler_failed(call, e)
        return None if call.send else self._result_text(call, result)

    async def _dispatch(self, call: IncomingCall, handler: Handler | None) -> None:
        """Start the async handler of a valid CALL or SEND in its own task, so the read loop keeps going."""
        if handler is None:  # the router changed since the engine checked
            if not call.send:
                await self._send_quietly(self.engine.make_error(call.message_id, ErrorCode.NOT_SUPPORTED))
            return
        if len(self._tasks) >= self.max_concurrent_calls:
            if not call.send and self.guard.violation():
                await self._close_for_violations()
                return
            self._log("busy", logging.WARNING, "%s: more than %d CALLs in progress; refused %s", self.station_id,
                      self.max_concurrent_calls, call.action)
            if not call.send:
                await self._send_quietly(self.engine.make_error(
                    call.message_id, ErrorCode.RPC_FRAMEWORK_ERROR, "too many concurrent CALLs"))
            return
        self._spawn(self._run_async(handler, call))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a handler coroutine as a task, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_async(self, handler: Handler, call: IncomingCall) -> None:
        """Await an async handler and send its answer."""
        coro = (handler.func(call.payload, CallContext(self, call.message_id, call.action))
                if handler.wants_context else handler.func(call.payload))
        await self._finish(call, coro)

    async def _finish(self, call: IncomingCall, pending: Awaitable[Any]) -> None:
        """Await a handler's result and answer the CALL with it."""
        try:
            result = await pending
        except Exception as e:
            text = self._handler_failed(call, e)
        else:
            if call.send:
                return
            text = self._result_text(call, result)
        if not call.send:
            await self._send_quietly(text)

    def _result_text(self, call: IncomingCall, result: Any) -> str:
        """The CALLRESULT for a handler's result, or the CALLERROR if the result is not a valid response."""
        text, err = self.engine.make_result(call, result)
        if err is not None:
            self._log("invalid response", logging.ERROR,
                      "%s: %s handler returned an invalid response (%s: %s); answered InternalError",
                      self.station_id, call.action, err.code.value, err.description)
        return text

    def _handler_failed(self, call: IncomingCall, e: Exception) -> str:
        """The CALLERROR for a handler that raised: its own OcppError, or InternalError."""
        if isinstance(e, OcppError):
            return self.engine.make_error(call.message_id, e.code, e.description, e.details)
        self._log("handler failure", logging.ERROR, "%s: %s handler failed", self.station_id, call.action, exc_info=e)
        return self.engine.make_error(call.message_id, ErrorCode.INTERNAL_ERROR, f"{call.action} handler failed")

    def _tell(self, direction: str, text: str) -> None:
        """Hand a frame to the listeners (a failing listener is logged, never breaks the connection)."""
        for listener in self.frame_listeners:
            try:
                listener(direction, text)
            except Exception:
                log.exception("%s: frame listener failed", self.station_id)

    async def _send_quietly(self, text: str) -> None:
        """Send an answer; if the websocket is gone there is nobody left to tell."""
        if self.frame_listeners:
            self._tell("tx", text)
        try:
            await self.ws.send(text)
        except Exception as e:
            log.debug("%s: could not send an answer: %s", self.station_id, e)

    # ----- sending -----

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None,
                   validated: bool = False) -> dict[str, Any]:
        """Send a CALL and return the peer's CALLRESULT payload.

        Raises PayloadInvalid before sending if `payload` does not fit the schema, CallErrorReceived if the peer
        answers with a CALLERROR, PayloadInvalid if its answer does not fit the response schema,
        CallTimeoutError after `timeout` (default: call_timeout) seconds, ConnectionClosedError if the socket closes.
        Calls queue: only one is outstanding at a time, as OCPP-J requires. `validated`: the caller has just checked
        `payload` against the schema (validate_request), so it is not checked twice.
        """
        if self.closed:
            raise ConnectionClosedError(f"{self.station_id}: connection closed")
        mid, text = self.engine.make_call(action, payload, validated=validated)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        try:
            if self._current is None and not self._queue:
                self._current = mid
                await self._transmit(mid, action, text, fut)
            else:  # wait for our turn: whoever ends the turn before ours sends this CALL
                item = _Queued(mid, action, text, fut, loop.create_future())
                self._queue.append(item)
                try:
                    await item.turn
                finally:
                    if item in self._queue:
                        self._queue.remove(item)
            wait = self.call_timeout if timeout is None else timeout
            try:
                async with asyncio.timeout(wait):
                    return await fut
            except TimeoutError:
                raise CallTimeoutError(f"{self.station_id}: no answer to {action} {mid} in {wait}s") from None
        finally:
            waiter = self._waiters.pop(mid, None)
            if waiter is not None and waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: a close during send() set one we raise our own error for
            self.engine.forget(mid)
            if self._current == mid:  # no answer came (timeout, close, cancelled): the next CALL's turn
                self._current = None
                if self._queue:
                    self._spawn(self._next())

    async def _transmit(self, mid: str, action: str, text: str, fut: asyncio.Future[dict[str, Any]]) -> None:
        """Put our CALL on the wire (its answer will resolve `fut`); ConnectionClosedError if that fails."""
        if self.closed:
            raise ConnectionClosedError(f"{self.station_id}: connection closed")
        self._waiters[mid] = fut
        if self.frame_listeners:
            self._tell("tx", text)
        try:
            await self.ws.send(text)
        except Exception as e:
            raise ConnectionClosedError(f"{self.station_id}: could not send {action}: {e}") from e

    async def _next(self) -> None:
        """Send the oldest queued CALL whose caller still waits (called when no CALL is outstanding)."""
        while self._queue and self._current is None:
            item = self._queue.popleft()
            if item.turn.done():  # its caller gave up while waiting
                continue
            self._current = item.mid
            try:
                await self._transmit(item.mid, item.action, item.text, item.answer)
            except ConnectionClosedError as e:
                self._current = None
                if not item.turn.done():
                    item.turn.set_exception(e)
                continue
            if not item.turn.done():
                item.turn.set_result(None)
            elif self._current == item.mid:  # its caller left while it was being sent: nobody reads the answer
                self._current = None

    async def send(self, action: str, payload: dict[str, Any]) -> None:
        """Send an OCPP 2.1 SEND (unconfirmed; allowed while a CALL is outstanding)."""
        text = self.engine.make_send(action, payload)
        if self.frame_listeners:
            self._tell("tx", text)
        try:
            await self.ws.send(text)
        except Exception as e:
            raise ConnectionClosedError(f"{self.station_id}: could not send {action}: {e}") from e

    # ----- closing -----

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket; outstanding calls fail with ConnectionClosedError."""
        try:
            await self.ws.close(code, reason)
        finally:
            if self._serve_task is None:
                self._mark_closed()

    async def wait_closed(self) -> None:
        """Wait until the websocket has closed."""
        await self._closed.wait()

    def _mark_closed(self) -> None:
        """Fail outstanding calls once the websocket is gone (call() pops and reads its own waiter)."""
        self._closed.set()
        while self._queue:
            item = self._queue.popleft()
            if not item.turn.done():
                item.turn.set_exception(ConnectionClosedError(f"{self.station_id}: connection closed"))
        for mid, fut in list(self._waiters.items()):
            if not fut.done():
                fut.set_exception(ConnectionClosedError(f"{self.station_id}: connection closed awaiting {mid}"))
