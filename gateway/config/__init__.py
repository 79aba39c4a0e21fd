"""Configuration: one TOML file plus the account files and reference CSVs beside it.

The public face of the package: ``load_config`` builds a frozen ``Config`` or raises one
``ConfigError`` listing every problem. The TOML tables live in ``settings``, reading the file into
them in ``load``, accounts in ``accounts``, the reference CSVs in ``reference_data``, the shared
parsing machinery in ``schema``.
"""

from __future__ import annotations

from gateway.config.accounts import Account
from gateway.config.load import DEFAULT_CONFIG, load_config
from gateway.config.reference_data import (
    ClearingMember,
    Exchange,
    Nco,
    OccHoliday,
    ReferenceData,
    load_reference,
)
from gateway.config.schema import ConfigError
from gateway.config.settings import (
    AmqpSettings,
    Config,
    DaemonSettings,
    DplSettings,
    EbeSettings,
    IntakeSettings,
    MetricsSettings,
    PmcSettings,
    SftpSettings,
    SpoolSettings,
    WebSettings,
)

__all__ = [
    "DEFAULT_CONFIG",
    "Account",
    "AmqpSettings",
    "ClearingMember",
    "Config",
    "ConfigError",
    "DaemonSettings",
    "DplSettings",
    "Exchange",
    "IntakeSettings",
    "MetricsSettings",
    "Nco",
    "OccHoliday",
    "EbeSettings",
    "PmcSettings",
    "ReferenceData",
    "SftpSettings",
    "SpoolSettings",
    "WebSettings",
    "load_config",
    "load_reference",
]
