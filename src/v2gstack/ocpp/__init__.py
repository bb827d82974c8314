"""OCPP-J for 1.6, 2.0.1 and 2.1: a sans-I/O RPC engine with strict schema validation, and its websocket transport.

Payloads are plain dicts with the field names exactly as the OCPP JSON schemas spell them. See docs/ocpp.md.
"""

from __future__ import annotations

from .auth import AuthDecision, Authenticator, Credentials, SecurityProfile, StaticAuthenticator
from .client import BackOff, Dialer, HandshakeRefused, StationClient
from .connection import Connection, WebSocketLike
from .engine import Answer, IncomingCall, Reply, RpcEngine
from .errors import (
    CallErrorReceived,
    CallTimeoutError,
    ConnectionClosedError,
    ErrorCode,
    OcppError,
    PayloadInvalid,
)
from .flood import FloodPolicy
from .router import CallContext, Router
from .schemas import SchemaStore, default_store
from .server import OcppServer
from .tls import client_context, server_context
from .versions import MessageType, Version

__all__ = [
    "Answer",
    "AuthDecision",
    "Authenticator",
    "BackOff",
    "CallContext",
    "CallErrorReceived",
    "CallTimeoutError",
    "Connection",
    "ConnectionClosedError",
    "Credentials",
    "Dialer",
    "ErrorCode",
    "FloodPolicy",
    "HandshakeRefused",
    "IncomingCall",
    "MessageType",
    "OcppError",
    "OcppServer",
    "PayloadInvalid",
    "Reply",
    "Router",
    "RpcEngine",
    "SchemaStore",
    "SecurityProfile",
    "StaticAuthenticator",
    "StationClient",
    "Version",
    "WebSocketLike",
    "client_context",
    "default_store",
    "server_context",
]
