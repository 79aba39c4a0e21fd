"""What every verb needs first: the configuration (and the business calendar), or every problem
with it printed and exit code 78."""

from __future__ import annotations

import sys

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
