"""What every verb needs first: the configuration (and the business calendar), or every problem
with it printed and exit code 78."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.calendar import BusinessCalendar
from gateway.config import Config, ConfigError, load_config
from gateway.reference import business_calendar


def print_config_problems(problems: list[str]) -> None:
    print(f"{len(problems)} problem(s) in the configuration:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def load_config_or_report(path: str) -> Config | None:
    """The config at ``path``, or None after printing every problem (the caller exits 78)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print_config_problems(exc.problems)
        if not Path(path).exists():
            print(
                "  (no config there: `posgate init DIR` lays out the default one in "
                "DIR/config/posgate.toml; give it with --config or $POSGATE_CONFIG)",
                file=sys.stderr,
            )
        return None


def load_calendar_or_report(path: str) -> tuple[Config, BusinessCalendar] | None:
    """The config and its business calendar, or None after printing what is wrong."""
    config = load_config_or_report(path)
    if config is None:
        return None
    try:
        return config, business_calendar(config.reference)
    except ValueError as exc:
        print_config_problems([f"{config.reference_dir / 'occ_holidays.csv'}: {exc}"])
        return None


EX_NOINPUT = 66
"""sysexits: an input file named on the command line does not exist or cannot be read."""
EX_CANTCREAT = 73
"""sysexits: an output named on the command line cannot be created."""


def input_exit_code(exc: OSError, otherwise: int) -> int:
    """66 for a missing or unreadable input file (sysexits), else ``otherwise``."""
    import errno

    if exc.errno in (errno.ENOENT, errno.EACCES, errno.EISDIR, errno.ENOTDIR):
        return EX_NOINPUT
    return otherwise


def output_problem(path: str) -> str | None:
    """Why ``--out PATH`` must not be written, or None.

    Outputs are written only to regular files, or as new files in folders that already exist:
    never over a device, a FIFO or a folder (``--out /dev/null`` as root would otherwise replace
    the device with a file), and never by creating missing folders (a typo stays a typo).
    """
    import os
    import stat
    from pathlib import Path

    target = Path(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        parent = target.parent
        if not parent.is_dir():
            return f"{path}: the folder {parent} does not exist"
        return None
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"{path} is not a regular file (write to a file, or leave --out off for stdout)"
    return None


def fail(message: str, code: int) -> int:
    """Print ``posgate: <message>`` on stderr and return ``code`` (the verb's exit code)."""
    sys.stderr.write(f"posgate: {message}\n")
    return code


def write_output(payload: bytes, out: str | None) -> int:
    """Write a verb's result to ``--out PATH`` (atomically: temp name, fsync, rename) or to
    standard output; the exit code: 0, 73 for a path that must not be written, 1 when the
    disk fails."""
    if out:
        from pathlib import Path

        from gateway.errors import TransientError
        from gateway.spool.fsio import write_atomic

        problem = output_problem(out)
        if problem:
            return fail(problem, EX_CANTCREAT)
        try:
            write_atomic(Path(out), payload)
        except TransientError as exc:
            return fail(str(exc), 1)
    else:
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
    return 0
