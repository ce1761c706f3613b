"""Uploading the queue to backends: the record schema, the sinks (HTTP batches, EPCIS capture,
MQTT) and the one `Uploader` loop the bridge hosts and `tagweigh upload --once` runs.

Heavy libraries (httpx, paho-mqtt) are imported by the sink modules only.
"""

from tagweigh.upload.sink import BatchRejected, BatchTooLarge, Sink, SinkError
from tagweigh.upload.uploader import Uploader

__all__ = ["BatchRejected", "BatchTooLarge", "Sink", "SinkError", "Uploader"]
