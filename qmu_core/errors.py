"""One exception root for everything QMU raises on purpose.

Every message says what was asked, why it failed, and how to fix it.
"""

from __future__ import annotations


class QMUError(Exception):
    """Root of every error qmu_core raises on purpose."""


class ConfigError(QMUError, ValueError):
    """A config value is invalid or inconsistent with another one."""


class DataError(QMUError):
    """A dataset cannot be found or read, or does not fit the requested split."""


class ArtifactError(QMUError):
    """An artifact is missing, unreadable, or from another stage version."""


class SealError(ArtifactError):
    """An artifact does not match its integrity record (its seal), or has none.

    It was changed after it was written, so nothing may read it.
    """
