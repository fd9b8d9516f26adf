"""Taobao TMC "top-link" frames, protocol version 2 (binary WebSocket messages).

Layout (little-endian), as the official Java SDK's `MessageEncoder02`/`MessageDecoder02`
and tmc.js `lib/message.js` write and read it:

    u8 version (2) | u8 message type | { i16 header type, payload }* | i16 0 (end)

Header types: 1 custom (counted-string name, u8 value format, value), 2 status code
(i32), 3 status phrase (counted string), 4 flag (i32), 5 token (counted string).
A counted string is an i32 UTF-8 byte length then the bytes; length 0 reads as null.
Value formats: 0 void, 1 counted string, 2 i8, 3 i16, 4 i32, 5 i64, 6 date (i64 epoch
ms), 7 bytes (i32 length + raw). The encoder writes status code, status phrase, flag and
token (each only when set) before the custom headers, in that order.

Custom header order is the sender's map order; the decoder does not care. The Java SDK
uses a HashMap, so its order is the hash order (for a Confirm: `id`, then `__kind`),
tmc.js uses insertion order (`__kind`, then `id`). Both are valid; see
docs/connectors/taobao.md for the byte-exact examples.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

VERSION = 2
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MessageType(IntEnum):
    CONNECT = 0
    CONNECTACK = 1
    SEND = 2
    SENDACK = 3


class HeaderType(IntEnum):
    END = 0
    CUSTOM = 1
    STATUS_CODE = 2
    STATUS_PHRASE = 3
    FLAG = 4
    TOKEN = 5


class Format(IntEnum):
    VOID = 0
    STRING = 1
    BYTE = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    DATE = 6
    BYTES = 7


class FrameError(ValueError):
    """Bytes that are not a top-link v2 frame."""


@dataclass(frozen=True, slots=True)
class Typed:
    """A custom header value with an explicit wire format (the Java SDK types its values:
    `__kind` is a Byte, message ids are Longs)."""

    format: Format
    value: Any


def byte(value: int) -> Typed:
    return Typed(Format.BYTE, value)


def int64(value: int) -> Typed:
    return Typed(Format.INT64, value)


@dataclass(slots=True)
class Frame:
    type: MessageType
    headers: dict[str, Any] = field(default_factory=dict)  # custom headers, in wire order
    status_code: int = 0
    status_phrase: str | None = None
    flag: int = 0
    token: str | None = None

    @property
    def refused(self) -> bool:
        """The SDK's `isError`: a status code above 0 or any status phrase."""
        return self.status_code > 0 or bool(self.status_phrase)


# --- encoding ---------------------------------------------------------------------------


def encode(frame: Frame) -> bytes:
    out = bytearray((VERSION, int(frame.type)))
    if frame.status_code > 0:
        out += struct.pack("<hi", HeaderType.STATUS_CODE, frame.status_code)
    if frame.status_phrase:
        out += struct.pack("<h", HeaderType.STATUS_PHRASE) + _counted(frame.status_phrase)
    if frame.flag > 0:
        out += struct.pack("<hi", HeaderType.FLAG, frame.flag)
    if frame.token:
        out += struct.pack("<h", HeaderType.TOKEN) + _counted(frame.token)
    for name, value in frame.headers.items():
        out += struct.pack("<h", HeaderType.CUSTOM) + _counted(name) + _value(value)
    out += struct.pack("<h", HeaderType.END)
    return bytes(out)


def _counted(text: str | None) -> bytes:
    data = text.encode("utf-8") if text else b""
    return struct.pack("<i", len(data)) + data


def _value(value: Any) -> bytes:
    if isinstance(value, Typed):
        return _typed(value.format, value.value)
    if value is None or isinstance(value, bool):
        return bytes((Format.VOID,))  # tmc.js writes booleans as void too
    if isinstance(value, str):
        return _typed(Format.STRING, value)
    if isinstance(value, bytes | bytearray):
        return _typed(Format.BYTES, bytes(value))
    if isinstance(value, datetime):
        return _typed(Format.DATE, value)
    if isinstance(value, int):
        # untyped integers take the smallest format that holds them (tmc.js's rule)
        for fmt, bits in ((Format.BYTE, 8), (Format.INT16, 16), (Format.INT32, 32)):
            if -(1 << (bits - 1)) <= value < 1 << (bits - 1):
                return _typed(fmt, value)
        return _typed(Format.INT64, value)
    raise TypeError(f"cannot encode {type(value).__name__} as a top-link value")


def _typed(fmt: Format, value: Any) -> bytes:
    head = bytes((fmt,))
    if fmt is Format.VOID:
        return head
    if fmt is Format.STRING:
        return head + _counted(value)
    if fmt is Format.BYTE:
        return head + struct.pack("<b", value)
    if fmt is Format.INT16:
        return head + struct.pack("<h", value)
    if fmt is Format.INT32:
        return head + struct.pack("<i", value)
    if fmt is Format.INT64:
        return head + struct.pack("<q", value)
    if fmt is Format.DATE:
        millis = value if isinstance(value, int) else (value - EPOCH) // timedelta(milliseconds=1)
        return head + struct.pack("<q", millis)
    if fmt is Format.BYTES:
        return head + struct.pack("<i", len(value)) + bytes(value)
    raise TypeError(f"unknown value format {fmt}")


# --- decoding ---------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise FrameError(f"frame ends inside a field at byte {self.pos}")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def raw(self) -> bytes:
        size = self.take("<i")
        if size < 0 or self.pos + size > len(self.data):
            raise FrameError(f"length {size} at byte {self.pos - 4} runs past the frame")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def counted(self) -> str | None:
        chunk = self.raw()
        if not chunk:
            return None
        try:
            return chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameError(f"string before byte {self.pos} is not UTF-8") from exc


def decode(data: bytes) -> Frame:
    """Parse one frame; raise FrameError on anything a v2 decoder would not read."""
    if len(data) < 4:
        raise FrameError(f"{len(data)} bytes is too short for a top-link frame")
    if data[0] != VERSION:
        raise FrameError(f"protocol version {data[0]}, expected {VERSION}")
    try:
        frame = Frame(MessageType(data[1]))
    except ValueError:
        raise FrameError(f"unknown message type {data[1]}") from None
    reader = _Reader(data)
    reader.pos = 2
    while True:
        header = reader.take("<h")
        if header == HeaderType.END:
            return frame
        if header == HeaderType.CUSTOM:
            name = reader.counted()
            if name is None:
                raise FrameError(f"custom header without a name at byte {reader.pos}")
            frame.headers[name] = _read_value(reader)
        elif header == HeaderType.STATUS_CODE:
            frame.status_code = reader.take("<i")
        elif header == HeaderType.STATUS_PHRASE:
            frame.status_phrase = reader.counted()
        elif header == HeaderType.FLAG:
            frame.flag = reader.take("<i")
        elif header == HeaderType.TOKEN:
            frame.token = reader.counted()
        else:
            raise FrameError(f"unknown header type {header} at byte {reader.pos - 2}")


def _read_value(reader: _Reader) -> Any:
    fmt = reader.take("<B")
    if fmt == Format.VOID:
        return None
    if fmt == Format.STRING:
        return reader.counted()
    if fmt == Format.BYTE:
        return reader.take("<b")
    if fmt == Format.INT16:
        return reader.take("<h")
    if fmt == Format.INT32:
        return reader.take("<i")
    if fmt == Format.INT64:
        return reader.take("<q")
    if fmt == Format.DATE:
        return EPOCH + timedelta(milliseconds=reader.take("<q"))
    if fmt == Format.BYTES:
        return reader.raw()
    raise FrameError(f"unknown value format {fmt} at byte {reader.pos - 1}")
