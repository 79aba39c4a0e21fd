"""Progress of the long steps of a CLI verb: a rich bar on a terminal, log lines otherwise.

``progress_bar(label, enabled)`` yields ``update(done, total)`` (or None when not ``enabled``,
e.g. a small input): on a terminal (stderr is a TTY) a transient rich bar with the time left;
otherwise an INFO log line at every quarter, so a batch job's log shows it went on.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

Update = Callable[[int, int], None]


@contextlib.contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Update | None]:
    if enabled and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            yield update
    elif enabled:
        last = [-1]

        def log_update(done: int, total: int) -> None:
            quarter = (4 * done) // max(total, 1)
            if quarter != last[0]:
                last[0] = quarter
                log.info("%s progress=%d/%d", label, done, total)

        yield log_update
    else:
        yield None
