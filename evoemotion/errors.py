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
