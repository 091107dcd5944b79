"""The error hierarchy: the CLI catches `MonitorError` and prints one line, never a traceback."""


class MonitorError(Exception):
    """Root of every error the service raises on purpose; `str()` is a one-line message."""

    exit_status = 2


class UsageError(MonitorError):
    """A bad command-line argument or configuration value."""


class InputError(MonitorError):
    """Input data that cannot be read: missing file, unknown format, empty, undecodable."""


class ProfileError(MonitorError):
    """A profile file that is missing, malformed, or of a format version this code cannot load."""


class ServiceError(MonitorError):
    """A server the command needs (Kafka, InfluxDB, Grafana) is unreachable or refused us."""


class StateError(MonitorError):
    """Saved state (a checkpoint) of a format this code does not load; it is refused, not run."""
