"""Standard MIDI File bytes, written by hand: a format-1 file is a header and a few track
chunks of delta-timed events, small enough not to need a library (mido reads it back in the tests).

Events are ``(tick, order, bytes)``; a track sorts them by tick, then by ``order`` (meta events
before notes, a note's end before the next note's start at the same tick).
"""

from __future__ import annotations

import struct

PPQ = 960  # ticks per quarter note: 0.5 ms at 120 BPM, and every common tuplet divides it
MAX_TEMPO = 0xFFFFFF  # microseconds per quarter note fit in three bytes


def varlen(value: int) -> bytes:
    """MIDI's variable-length quantity: 7 bits a byte, the high bit set on all but the last."""
    if value < 0:
        raise ValueError(f"negative delta time {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def meta(kind: int, data: bytes) -> bytes:
    return bytes((0xFF, kind)) + varlen(len(data)) + data


def tempo(microseconds: int) -> bytes:
    return meta(0x51, microseconds.to_bytes(3, "big"))


def time_signature(numerator: int, denominator: int) -> bytes:
    """24 MIDI clocks per metronome click and 8 notated 32nds per quarter (the usual values)."""
    return meta(0x58, bytes((numerator, denominator.bit_length() - 1, 24, 8)))


def key_signature(fifths: int, minor: bool) -> bytes:
    return meta(0x59, struct.pack(">bB", fifths, int(minor)))


def text(kind: int, value: str) -> bytes:
    """Text-like meta events: 0x03 track name, 0x06 marker."""
    return meta(kind, value.encode("utf-8"))


def note(on: bool, channel: int, pitch: int, velocity: int) -> bytes:
    return bytes(((0x90 if on else 0x80) | channel, pitch, velocity))


def track(events: list[tuple[int, int, bytes]], end_tick: int) -> bytes:
    """One ``MTrk`` chunk: the events in time order, then End of Track at ``end_tick`` or later."""
    body = bytearray()
    now = 0
    for tick, _, data in sorted(events, key=lambda e: (e[0], e[1])):
        body += varlen(tick - now) + data
        now = tick
    body += varlen(max(0, end_tick - now)) + meta(0x2F, b"")
    return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def midi_file(tracks: list[bytes]) -> bytes:
    """Format 1 (simultaneous tracks; the first is the conductor track), ``PPQ`` ticks a quarter."""
    return b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), PPQ) + b"".join(tracks)
