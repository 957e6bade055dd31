"""The AWS event-stream decoder, the fake's encoder, and botocore as the independent judge."""

from __future__ import annotations

import json
import random
import struct
import uuid
import zlib

import pytest

from synapse.providers.eventstream import EventStreamDecoder, EventStreamError, decode_headers
from tests.fakes.bedrock import (
    PADDING_ALPHABET,
    BedrockFake,
    BedrockReply,
    encode_message,
    error_frame,
    event_frame,
    exception_frame,
)
from tests.fakes.base import FakeToolCall


def _frames() -> list[bytes]:
    return [
        event_frame("messageStart", {"role": "assistant"}, "abcd"),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hél"}}, "ab"),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo ✓"}}, PADDING_ALPHABET),
        event_frame("contentBlockStop", {"contentBlockIndex": 0}, "a"),
        event_frame("messageStop", {"stopReason": "end_turn"}, "abcdefg"),
        event_frame("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}}, "abc"),
    ]


def test_roundtrip_one_frame_per_feed():
    dec = EventStreamDecoder()
    out = []
    for f in _frames():
        got = dec.feed(f)
        assert len(got) == 1
        out.extend(got)
    assert dec.pending == 0
    assert [m.headers[":event-type"] for m in out] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata",
    ]
    assert all(m.headers[":message-type"] == "event" and m.headers[":content-type"] == "application/json" for m in out)
    assert json.loads(out[1].payload) == {"contentBlockIndex": 0, "delta": {"text": "Hél"}, "p": "ab"}
    assert json.loads(out[2].payload)["delta"]["text"] == "lo ✓"


def test_header_order_and_compact_sorted_payload_match_recorded_frames():
    frame = event_frame("contentBlockDelta", {"delta": {"text": "x"}, "contentBlockIndex": 0}, "abc")
    (msg,) = EventStreamDecoder().feed(frame)
    assert list(msg.headers) == [":event-type", ":content-type", ":message-type"]
    assert msg.payload == b'{"contentBlockIndex":0,"delta":{"text":"x"},"p":"abc"}'


def test_every_split_point_and_many_frames_per_feed():
    blob = b"".join(_frames())
    expected = [m.payload for m in EventStreamDecoder().feed(blob)]
    assert len(expected) == 6
    # every possible 2-way split
    for cut in range(1, len(blob)):
        dec = EventStreamDecoder()
        got = dec.feed(blob[:cut]) + dec.feed(blob[cut:])
        assert [m.payload for m in got] == expected, cut
        assert dec.pending == 0
    # random chunkings, including 1-byte feeds
    rng = random.Random(7)
    for size in (1, 3, 7, 64):
        dec = EventStreamDecoder()
        got = []
        pos = 0
        while pos < len(blob):
            step = rng.randint(1, size)
            got += dec.feed(blob[pos:pos + step])
            pos += step
        assert [m.payload for m in got] == expected


def test_all_header_value_types():
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = [
        ("t", True), ("f", False), ("i8", ("int8", -5)), ("i16", ("int16", 300)), ("i32", 70000),
        ("i64", ("int64", 2**40)), ("b", b"\x00\x01"), ("s", "str"), ("ts", ("timestamp", 1700000000000)), ("u", u),
    ]
    (msg,) = EventStreamDecoder().feed(encode_message(headers, b"{}"))
    assert msg.headers == {
        "t": True, "f": False, "i8": -5, "i16": 300, "i32": 70000, "i64": 2**40, "b": b"\x00\x01", "s": "str",
        "ts": 1700000000000, "u": u,
    }
    assert msg.payload == b"{}"


def test_empty_headers_and_payload():
    (msg,) = EventStreamDecoder().feed(encode_message([], b""))
    assert msg.headers == {} and msg.payload == b""


def test_bad_prelude_crc():
    frame = bytearray(_frames()[0])
    frame[9] ^= 0x01  # inside the prelude CRC
    with pytest.raises(EventStreamError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(frame))


def test_bad_length_with_matching_prelude_crc_is_not_trusted():
    # total length 8 (< 16) with a correct prelude CRC
    prelude = struct.pack(">II", 8, 0)
    with pytest.raises(EventStreamError, match="bad frame lengths"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 8)


def test_bad_message_crc_even_when_split():
    frame = bytearray(_frames()[1])
    frame[-1] ^= 0xFF
    dec = EventStreamDecoder()
    assert dec.feed(bytes(frame[:20])) == []
    with pytest.raises(EventStreamError, match="message CRC"):
        dec.feed(bytes(frame[20:]))


def test_corrupted_payload_is_caught_by_message_crc():
    frame = bytearray(_frames()[1])
    frame[-6] ^= 0x20  # a payload byte
    with pytest.raises(EventStreamError, match="message CRC"):
        EventStreamDecoder().feed(bytes(frame))


def test_partial_frame_stays_pending():
    frame = _frames()[0]
    dec = EventStreamDecoder()
    assert dec.feed(frame[:-1]) == []
    assert dec.pending == len(frame) - 1


def test_duplicate_and_unknown_header_types():
    dup = bytes([1]) + b"a" + b"\x00" + bytes([1]) + b"a" + b"\x01"
    with pytest.raises(EventStreamError, match="duplicate"):
        decode_headers(dup)
    with pytest.raises(EventStreamError, match="unknown header value type"):
        decode_headers(bytes([1]) + b"a" + b"\x0c")
    with pytest.raises(EventStreamError):
        decode_headers(bytes([1]) + b"a" + b"\x07\x00\x09abc")  # string longer than the headers


# --- botocore decodes the fake's frames: the fake is faithful independently of our decoder -----------


def _botocore_events(blob: bytes) -> list[dict]:
    import botocore.session
    from botocore.eventstream import EventStream, EventStreamBuffer
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    shape = model.operation_model("ConverseStream").output_shape.members["stream"]
    buf = EventStreamBuffer()
    chunks = [blob[i:i + 7] for i in range(0, len(blob), 7)]

    class Raw:
        def stream(self):
            yield from chunks

    # CRCs checked by botocore's own buffer
    for c in chunks:
        buf.add_data(c)
    raw_messages = list(buf)
    parser = create_parser("rest-json").EVENT_STREAM_PARSER_CLS()
    events = list(EventStream(Raw(), shape, parser, "ConverseStream"))
    assert len(raw_messages) == len(events)
    return events


def test_botocore_parses_fake_frames_and_typed_events():
    events = _botocore_events(b"".join(_frames()))
    assert [next(iter(e)) for e in events] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata",
    ]
    assert events[1]["contentBlockDelta"]["delta"]["text"] == "Hél"
    assert events[5]["metadata"]["usage"]["totalTokens"] == 5


def test_botocore_raises_on_fake_exception_frame():
    from botocore.exceptions import EventStreamError as BotoEventStreamError

    blob = _frames()[0] + exception_frame("throttlingException", "Too many tokens, please wait before trying again.")
    with pytest.raises(BotoEventStreamError, match="throttlingException"):
        _botocore_events(blob)


def test_botocore_checksum_detects_fake_corruption():
    from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

    frame = bytearray(_frames()[1])
    frame[-1] ^= 0xFF
    buf = EventStreamBuffer()
    buf.add_data(bytes(frame))
    with pytest.raises(ChecksumMismatch):
        list(buf)


def test_unmodeled_error_frame_shape():
    (msg,) = EventStreamDecoder().feed(error_frame("InternalFailure", "boom"))
    assert msg.message_type == "error"
    assert msg.headers[":error-code"] == "InternalFailure" and msg.headers[":error-message"] == "boom"


@pytest.fixture(scope="module")
def wire_fake():
    fake = BedrockFake().start()
    yield fake
    fake.stop()


def test_a_whole_fake_stream_from_the_wire_is_valid_for_botocore(wire_fake):
    """Raw bytes of a real HTTP converse-stream answer (text, reasoning, tool), judged by botocore."""
    import urllib.request

    wire_fake.reset()
    wire_fake.reply(
        BedrockReply(
            text="Let me check.", reasoning="I should call the tool.",
            tool_calls=[FakeToolCall("tooluse_1", "get_weather", {"city": "Paris"})],
        )
    )
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "weather?"}]}],
                       "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}})
    req = urllib.request.Request(
        f"{wire_fake.url}/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
        data=body.encode(), method="POST",
        headers={"Authorization": f"Bearer {wire_fake.key}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        blob = resp.read()
    events = _botocore_events(blob)
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    # no contentBlockStart for reasoning (index 0) or text (index 1); one for the tool (index 2)
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert starts == [{"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "type": "tool_use"}}}]
    stops = [e["contentBlockStop"]["contentBlockIndex"] for e in events if "contentBlockStop" in e]
    assert stops == [0, 1, 2]
    tool_input = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                         if "contentBlockDelta" in e and "toolUse" in e["contentBlockDelta"]["delta"])
    assert json.loads(tool_input) == {"city": "Paris"}
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    # every raw payload carries "p", a prefix of the alphabet
    for m in EventStreamDecoder().feed(blob):
        p = json.loads(m.payload)["p"]
        assert p and PADDING_ALPHABET.startswith(p)
