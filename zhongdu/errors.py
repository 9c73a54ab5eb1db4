"""Domain exceptions. Each also subclasses the matching built-in so callers can catch either."""

from __future__ import annotations


class ZhongduError(Exception):
    """Base of every error Zhongdu raises on purpose; the CLI prints these as one line."""


class ConfigError(ZhongduError, ValueError):
    """A setting is missing or malformed."""


class StorageError(ZhongduError, RuntimeError):
    """The database refused or could not be reached."""


class ServiceError(ZhongduError, RuntimeError):
    """An embedded service (database, broker) failed to start."""
