"""Reads ``google.rpc.RetryInfo`` out of a gRPC status's ``grpc-status-details-bin``.

That trailer holds an encoded ``google.rpc.Status`` (code 1, message 2, details 3: repeated
``google.protobuf.Any``). The client decodes the few fields it needs with a small wire
reader instead of generating ``google/rpc`` code: a generated ``google.rpc.RetryInfo``
would clash with googleapis-common-protos' in the same process.
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

from google.protobuf import any_pb2, duration_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""The trailer that carries the encoded ``google.rpc.Status``."""

RETRY_INFO_TYPE = "google.rpc.RetryInfo"
"""The full name of the detail that says how long to wait before retrying."""

MAX_RETRY_DELAY_S = 300.0
"""The longest wait honoured, in seconds: a larger one (a bad clock, a bug) is cut to this."""

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _varint(data: bytes, at: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(data: bytes) -> Iterator[Tuple[int, int, bytes]]:
    """(field number, wire type, raw bytes of a length-delimited value, else b"") per field."""
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _, at = _varint(data, at)
            yield field, wire, b""
        elif wire in (_FIXED64, _FIXED32):
            at += 8 if wire == _FIXED64 else 4
            if at > len(data):
                raise ValueError("truncated fixed-width field")
            yield field, wire, b""
        elif wire == _BYTES:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated length-delimited field")
            yield field, wire, data[at : at + length]
            at += length
        else:
            raise ValueError(f"unsupported wire type {wire}")


def retry_delay_of(status: bytes) -> Optional[float]:
    """The delay, in seconds, of the first ``google.rpc.RetryInfo`` among the details of an
    encoded ``google.rpc.Status``, at most :data:`MAX_RETRY_DELAY_S`; None when there is
    none or the bytes are malformed."""
    try:
        for field, wire, value in _fields(status):
            if field != 3 or wire != _BYTES:
                continue
            detail = any_pb2.Any.FromString(value)
            if detail.type_url.rsplit("/", 1)[-1] != RETRY_INFO_TYPE:
                continue
            delay = duration_pb2.Duration()
            for info_field, info_wire, info_value in _fields(detail.value):
                if info_field == 1 and info_wire == _BYTES:
                    delay.MergeFromString(info_value)
            seconds = delay.seconds + delay.nanos / 1e9
            return min(MAX_RETRY_DELAY_S, max(0.0, seconds))
    except Exception:  # noqa: BLE001 - malformed details are ignored, never raised
        return None
    return None
