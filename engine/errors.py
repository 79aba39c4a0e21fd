"""Typed errors of the engine, split by whose fault they are.

``InputRejected`` and its subclasses are the sender's fault: they carry a stable reason code (the
strings of the reason-code tables) and a location, and are never retried. ``EngineBug`` is ours.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a problem was found; every part optional."""

    file: str | None = None
    line: int | None = None
    field: str | None = None

    def describe(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(f"field {self.field}")
        return ", ".join(parts)


class InputRejected(Exception):
    """Bad input from a sender: a reason code, a human message naming the value, a location."""

    def __init__(self, reason: str, message: str, location: Location | None = None) -> None:
        self.reason = reason
        self.message = message
        self.location = location or Location()
        where = self.location.describe()
        super().__init__(f"{reason}: {message}" + (f" ({where})" if where else ""))


class UnreadableInput(InputRejected):
    """A whole input that cannot be read or parsed at all (binary, empty, truncated, ...)."""


class EngineBug(Exception):
    """An internal inconsistency: our fault, never the sender's."""
