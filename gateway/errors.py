"""Errors of the daemon side that are nobody's bad input.

``TransientError`` is trouble that goes away (broker down, disk full, a remote SFTP host away): the
caller retries with capped backoff and never turns it into a reject.
"""

from __future__ import annotations


class TransientError(Exception):
    """Temporary trouble: retry later, never reject the input for it."""


class Interrupted(Exception):
    """The daemon is stopping: the work in hand was rolled back, and its input stays where the
    next start takes it up again (a claimed file stays claimed in ``work/``)."""
