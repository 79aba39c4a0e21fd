"""Errors of the daemon side that are nobody's bad input.

``TransientError`` is trouble that goes away (broker down, disk full, a remote SFTP host away): the
caller retries with capped backoff and never turns it into a reject.
"""

from __future__ import annotations


class TransientError(Exception):
    """Temporary trouble: retry later, never reject the input for it."""
