"""Errors of the CSMS's services that the API turns into HTTP answers."""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """A CSMS-initiated command could not be delivered or was refused; `status` is the HTTP status the API uses."""

    def __init__(self, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}
