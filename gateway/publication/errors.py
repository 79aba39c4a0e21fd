"""The publication's errors, split by whose trouble they are.

``PublicationError`` and ``PublicationCancelled`` end a build or a run; ``PublicationBusy`` and
``IntakePending`` are transient reasons to publish a bit later; ``ExchangeUnreachable`` (retried)
and ``DeliveryRefused`` (not retried) describe the delivery to one exchange.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from gateway.errors import TransientError


class PublicationError(Exception):
    """The publication could not be built (not a delivery problem)."""


class PublicationBusy(TransientError):
    """Another process held the publication lock for longer than we were willing to wait."""


class PublicationCancelled(Exception):
    """The daemon is stopping; the run was abandoned cleanly and will be redone."""


class IntakePending(TransientError):
    """Files received before the cycle's cutoff are still being processed: publish a bit later."""

    def __init__(
        self, cycle: dt.date, count: int, files: Sequence[tuple[int, str, str, str]] = ()
    ) -> None:
        super().__init__(
            f"{count} DPL file(s) received before the cutoff of cycle {cycle.isoformat()} are "
            "still being processed"
        )
        self.count = count
        self.files = list(files)
        """(id, firm, name, state) of each."""


class ExchangeUnreachable(TransientError):
    """The exchange's SFTP server could not be reached (network, refused, timeout)."""


class DeliveryRefused(Exception):
    """The exchange's server answered but refused: login, host key, permission, missing folder."""
