"""posgate's daemon: adapters, pipelines, the CLI and the one composition root (``app``)."""

__version__ = "0.1.0"
