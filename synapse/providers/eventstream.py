"""Decoder for the AWS binary event stream (`application/vnd.amazon.eventstream`).

Bedrock's ConverseStream answers with these frames. Each one is, big-endian:

    total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32

`prelude_crc` is the CRC-32 of the first 8 bytes and `message_crc` the CRC-32 of
everything before it. Both are checked: a frame that fails either check raises
`EventStreamError`, as does a frame that is too short, too long or has malformed
headers. Bytes may arrive in any split: `EventStreamDecoder.feed()` keeps what is
left of a partial frame and returns every frame completed by the new bytes.

Pure framing, no I/O and no dependencies: botocore is not needed to read a stream.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from struct import Struct
from typing import Any

__all__ = ["EventStreamDecoder", "EventStreamError", "EventStreamMessage", "decode_headers"]

_PRELUDE = Struct(">III")
_U32 = Struct(">I")
_U16 = Struct(">H")
_I8 = Struct(">b")
_I16 = Struct(">h")
_I32 = Struct(">i")
_I64 = Struct(">q")

PRELUDE_LENGTH = 12
#: Smallest frame: prelude plus message CRC, no headers, no payload.
MIN_MESSAGE_LENGTH = 16
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad CRC, bad lengths, bad headers)."""


@dataclass(slots=True)
class EventStreamMessage:
    headers: dict[str, Any]
    payload: bytes

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type", "event"))


def decode_headers(data: bytes | memoryview) -> dict[str, Any]:
    """Headers: 1-byte name length, name, 1-byte type, value (see module docstring)."""
    headers: dict[str, Any] = {}
    view = memoryview(data)
    pos, end = 0, len(view)
    try:
        while pos < end:
            name_len = view[pos]
            pos += 1
            name = bytes(view[pos:pos + name_len]).decode("utf-8")
            pos += name_len
            if pos >= end:
                raise EventStreamError("a header has no value type")
            kind = view[pos]
            pos += 1
            value: Any
            if kind == 7 or kind == 6:  # string / bytes: u16 length + data
                (length,) = _U16.unpack_from(view, pos)
                pos += 2
                raw = bytes(view[pos:pos + length])
                if len(raw) != length:
                    raise EventStreamError("a header value runs past the headers")
                pos += length
                value = raw.decode("utf-8") if kind == 7 else raw
            elif kind == 0:
                value = True
            elif kind == 1:
                value = False
            elif kind == 2:
                (value,) = _I8.unpack_from(view, pos)
                pos += 1
            elif kind == 3:
                (value,) = _I16.unpack_from(view, pos)
                pos += 2
            elif kind == 4:
                (value,) = _I32.unpack_from(view, pos)
                pos += 4
            elif kind == 5 or kind == 8:  # int64 / timestamp (ms since epoch)
                (value,) = _I64.unpack_from(view, pos)
                pos += 8
            elif kind == 9:
                raw = bytes(view[pos:pos + 16])
                if len(raw) != 16:
                    raise EventStreamError("a uuid header is cut short")
                value = uuid.UUID(bytes=raw)
                pos += 16
            else:
                raise EventStreamError(f"unknown header value type {kind}")
            if name in headers:
                raise EventStreamError(f"duplicate header {name!r}")
            headers[name] = value
    except (IndexError, UnicodeDecodeError) as exc:
        raise EventStreamError(f"malformed headers: {exc}") from None
    except Exception as exc:  # struct.error: a value cut short
        if isinstance(exc, EventStreamError):
            raise
        raise EventStreamError(f"malformed headers: {exc}") from None
    return headers


class EventStreamDecoder:
    """Incremental decoder: `feed(bytes)` returns the frames those bytes completed."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at EOF means a cut frame)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        buf = self._buf
        buf += data
        out: list[EventStreamMessage] = []
        pos = 0
        size = len(buf)
        view = memoryview(buf)
        try:
            while size - pos >= PRELUDE_LENGTH:
                total, headers_len, prelude_crc = _PRELUDE.unpack_from(view, pos)
                if zlib.crc32(view[pos:pos + 8]) != prelude_crc:
                    raise EventStreamError("prelude CRC mismatch")
                if total < MIN_MESSAGE_LENGTH or headers_len > MAX_HEADERS_LENGTH:
                    raise EventStreamError(f"bad frame lengths (total {total}, headers {headers_len})")
                payload_len = total - headers_len - MIN_MESSAGE_LENGTH
                if payload_len < 0 or payload_len > MAX_PAYLOAD_LENGTH:
                    raise EventStreamError(f"bad payload length {payload_len}")
                if size - pos < total:
                    break
                end = pos + total - 4
                (message_crc,) = _U32.unpack_from(view, end)
                if zlib.crc32(view[pos:end]) != message_crc:
                    raise EventStreamError("message CRC mismatch")
                hstart = pos + PRELUDE_LENGTH
                pstart = hstart + headers_len
                headers = decode_headers(view[hstart:pstart]) if headers_len else {}
                out.append(EventStreamMessage(headers, bytes(view[pstart:end])))
                pos += total
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return out
