"""The project's user-facing error types: each message is one line that names the file or key.

They live in data/, the bottom layer that every folder may import, because data/ raises them too (unreadable
reports, bad labelled files) and imports only go serve -> models/training -> data.
"""


class ChainstageError(Exception):
    """Base class: the CLI prints these on one line, without a traceback unless --debug."""


class ReportError(ChainstageError):
    """A report file cannot be read: empty, binary, undecodable, corrupt, no text, no Chinese, too large."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ConfigError(ChainstageError):
    """A config file, key or --set value is wrong."""


class ModelError(ChainstageError):
    """A model folder is missing or cannot be loaded."""


class LabelingError(ChainstageError):
    """A review batch or labelled file cannot be used: unknown label or unit, conflict, duplicate, truncated file."""
