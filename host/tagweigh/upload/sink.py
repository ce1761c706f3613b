"""The sink interface: where an `Uploader` sends batches of queue rows.

A sink turns rows into its own wire form and returns one result per row: (reading id, state,
reason) with state 'uploaded' (the backend has it, first time or as a duplicate), 'rejected' (the
backend refused it for good; reason is the backend's) or 'retry'. A failure of the whole batch
(network, 5xx, timeout, TLS, authentication) raises `SinkError` instead: nothing is marked and the
uploader backs off. Sinks never sleep; the uploader owns every wait.
"""

from __future__ import annotations

from typing import Any

from tagweigh.errors import TagweighError

__all__ = ["BatchRejected", "BatchTooLarge", "Result", "Sink", "SinkError"]

Result = tuple[int, str, "str | None"]


class SinkError(TagweighError):
    """The batch could not be delivered; try again later.

    retry_after: seconds the backend asked us to wait (429/503 Retry-After), or None.
    fatal: a configuration problem (bad certificate, credentials refused, no such endpoint) that
    retrying will not fix by itself; the uploader keeps trying at its slowest pace and reports it.
    """

    exit_code = 4

    def __init__(self, message: str, *, retry_after: float | None = None, fatal: bool = False,
                 hint: str | None = None):
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
        self.fatal = fatal


class BatchTooLarge(SinkError):
    """The backend refused the batch's size (HTTP 413): send smaller batches."""


class BatchRejected(SinkError):
    """The backend refused the whole batch as malformed (HTTP 400/422). The uploader splits the
    batch to find the records at fault; a single refused record is marked 'rejected' with
    `reason`."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Sink:
    """Base class. `name` is the sink's key in the queue's per-sink upload state.

    A sink whose wire form is costly to build also implements `prepare` (rows -> wire form, no
    I/O) and `deliver` (send that wire form): the uploader prepares the next batch on a helper
    thread while the current one is in flight, so `prepare` must not touch the connection or
    any state `deliver` changes. By default there is nothing to prepare and `deliver` is `send`."""

    name = "sink"

    def send(self, rows: list[dict[str, Any]]) -> list[Result]:
        raise NotImplementedError

    def prepare(self, rows: list[dict[str, Any]]) -> Any:
        """The wire form of a batch of rows, built without I/O (default: None)."""
        return None

    def deliver(self, rows: list[dict[str, Any]], prepared: Any) -> list[Result]:
        """Send rows whose wire form `prepare(rows)` built; same contract as `send`."""
        return self.send(rows)

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.name
