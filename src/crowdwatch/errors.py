"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class CrowdwatchError(Exception):
    """A mistake the user can fix (bad config, missing file, missing model)."""


class ConfigError(CrowdwatchError):
    """The configuration file is missing, unreadable or invalid."""


class SourceError(CrowdwatchError):
    """A frame source cannot be opened or read."""


class ModelError(CrowdwatchError):
    """The detector model cannot be found or loaded."""
