"""The one family of errors that evoemotion raises for bad input.

Library code raises these with messages that name the file, field or value at fault; the
command line prints them as a single line and exits non-zero.
"""

from __future__ import annotations


class EvoEmotionError(Exception):
    """Base class of every error evoemotion raises on purpose."""


class ConfigError(EvoEmotionError, ValueError):
    """A preset, option or configuration value is missing or invalid."""


class DataError(EvoEmotionError):
    """A dataset, label file or image cannot be read or is malformed."""


class CheckpointError(EvoEmotionError):
    """A model checkpoint, run checkpoint or run folder is missing, corrupt or mismatched."""


class GenomeError(EvoEmotionError, ValueError):
    """A serialised genome cannot be parsed or does not match its genotype."""


class UntrustedCheckpointError(CheckpointError):
    """A run checkpoint is not signed with this user's key (loading it would run its code)."""


class RunBusyError(EvoEmotionError):
    """Another process is writing the run folder (it holds the folder's lock)."""


class WriteError(EvoEmotionError, OSError):
    """The operating system refused a write (no space, no permission, read-only ...).

    Attributes:
        path: The file that could not be written.
    """

    def __init__(self, path: object, err: OSError) -> None:
        reason = err.strerror or str(err)
        super().__init__(err.errno, f"cannot write {path}: {reason}")
        self.path = path

    def __str__(self) -> str:
        return self.strerror or ""
