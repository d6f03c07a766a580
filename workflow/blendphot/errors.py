"""Exceptions whose messages are meant to be read by users."""

__all__ = ["BlendphotError", "ConfigError", "DiskFullError", "DownloadError", "InputError"]


class BlendphotError(Exception):
    """Base class: one clear message that names the file, column or key at fault."""


class ConfigError(BlendphotError):
    """A configuration value is missing, of the wrong type or inconsistent."""


class InputError(BlendphotError):
    """An input file is unreadable, corrupt, incomplete or lacks a column."""


class DownloadError(BlendphotError):
    """A download failed, was cut short for good, or did not match its checksum."""


class DiskFullError(BlendphotError):
    """An output does not fit on its file system."""
