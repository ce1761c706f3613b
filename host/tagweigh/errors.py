"""The one exception root of the host package. Layers translate lower errors into these."""


class TagweighError(Exception):
    """Base of every error the host toolkit raises on purpose. The CLI prints it as one line."""

    #: Process exit code the CLI uses for this kind of error.
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class ConfigError(TagweighError):
    """A configuration file or command-line value is wrong."""

    exit_code = 2
