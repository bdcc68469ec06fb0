"""midi: the result's timeline as a Standard MIDI File (``--format mid``), for a DAW or notation program.

The tempo map is what a producer otherwise taps in by hand: one quarter note per beat of the
result and a tempo event at every beat, so that the file's n-th beat lands on the song's n-th
beat (each tempo is rounded to a microsecond with the rounding carried, so the error never
grows: under a microsecond per beat). Before the first beat a lead-in of one quarter (more when
it would be slower than MIDI's slowest tempo) makes the file's time 0 the audio's time 0: a file
dropped at the start of a DAW's timeline lines up with the audio dropped beside it.

Bars: the lead-in and the beats before the first downbeat form bar 1; from then on every
downbeat starts a bar, and a time-signature event (beats per bar / 4) stands at each bar whose
length differs from the one before. Key-signature events where the key changes, markers for
sections ("A verse") and chords ("A:min") on the conductor track, and a second track "Chords"
holding each chord's triad as notes (channel 1, around middle C). Registered through
``register_exporters`` exactly as a third-party format would be.
"""

from __future__ import annotations

import math

import mirflow

from . import smf
from .smf import PPQ

FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}  # sharps of each letter's major key
DEFAULT_TEMPO = 500_000  # MIDI's own default (120 BPM): used where the result has fewer than two beats
CHORD_VELOCITY = 80


class TempoMap:
    """Audio seconds to ticks. Anchors are tick 0 and each beat; ``tempos[k]`` (microseconds a
    quarter) holds from anchor ``k`` to the next, the last one on to the end of the file."""

    def __init__(self, beats: list[float]):
        self.ticks: list[int] = [0]
        self.micros: list[int] = [0]  # where the file's tempo events put each anchor
        self.tempos: list[int] = []
        first = round(beats[0] * 1e6) if beats else 0
        self.lead_in = math.ceil(first / smf.MAX_TEMPO) if first > 0 else 0  # quarters before the first beat
        if beats and self.lead_in:
            self._step(first, self.lead_in)
        for time in beats[1:]:
            self._step(round(time * 1e6), 1)
        tail = self.tempos[-1] if len(beats) > 1 else DEFAULT_TEMPO
        self.tempos.append(tail)

    def _step(self, target_us: int, quarters: int) -> None:
        """The tempo that brings the next anchor (``quarters`` on) to ``target_us``, rounded
        from where the last one really is, so rounding never accumulates."""
        tempo = min(smf.MAX_TEMPO, max(1, round((target_us - self.micros[-1]) / quarters)))
        self.tempos.append(tempo)
        self.ticks.append(self.ticks[-1] + quarters * PPQ)
        self.micros.append(self.micros[-1] + tempo * quarters)

    def tick(self, seconds: float) -> int:
        """The tick at ``seconds`` of audio (within the segment between two anchors, linearly)."""
        micros = seconds * 1e6
        k = max(0, _last_at_most(self.micros, micros))
        return self.ticks[k] + max(0, round((micros - self.micros[k]) * PPQ / self.tempos[k]))

    def events(self) -> list[tuple[int, int, bytes]]:
        return [(tick, 0, smf.tempo(tempo)) for tick, tempo in zip(self.ticks, self.tempos)]


def _last_at_most(values: list[int], x: float) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def bar_events(timeline: dict, summary: dict, tempo_map: TempoMap) -> list[tuple[int, int, bytes]]:
    """Time signatures: bar 1 from tick 0 to the first downbeat (lead-in and pickup beats), then
    one wherever a bar's number of beats differs from the bar before."""
    beats = timeline["beats"]
    downbeat_times = {round(t, 4) for t in timeline.get("downbeats") or []}
    down = [i for i, b in enumerate(beats) if b.get("position") == 1 or round(b["time"], 4) in downbeat_times]
    if not down:
        label = (summary.get("time_signature") or {}).get("label") or ""
        numerator = label.partition("/")[0]
        return [(0, 0, smf.time_signature(int(numerator), 4))] if numerator.isdigit() and 0 < int(numerator) < 256 else []
    lengths = [b - a for a, b in zip(down, down[1:])]
    last = len(beats) - down[-1]  # the last bar may be cut short by the end of the song
    lengths.append(max(last, lengths[-1]) if lengths else last)
    events, current = [], None
    pickup = tempo_map.lead_in + down[0]
    if pickup:
        current = pickup
        events.append((0, 0, smf.time_signature(min(pickup, 255), 4)))
    for index, length in zip(down, lengths):
        if length != current:
            current = length
            events.append((tempo_map.ticks[index + (1 if tempo_map.lead_in else 0)], 0,
                           smf.time_signature(min(length, 255), 4)))
    return events


def key_fifths(label: str) -> tuple[int, bool] | None:
    """'Eb major' -> (-3, False), 'F# minor' -> (3, True); None for what is no major/minor key."""
    tonic, _, mode = str(label).partition(" ")
    if not tonic or tonic[0] not in FIFTHS or any(c not in "#b" for c in tonic[1:]) or mode not in ("major", "minor"):
        return None
    fifths = FIFTHS[tonic[0]] + 7 * tonic.count("#") - 7 * tonic[1:].count("b") - (3 if mode == "minor" else 0)
    while fifths > 7:  # D# major -> Eb major: the enharmonic key a score would write
        fifths -= 12
    while fifths < -7:
        fifths += 12
    return fifths, mode == "minor"


def render(result: dict) -> bytes:
    """The whole file: conductor track (tempo, metre, keys, markers) and the chord track."""
    from mirflow.sonify import chord_pitches

    timeline, summary = result["timeline"], result["summary"]
    beats = []  # strictly increasing: a repeated time would be a beat of no length
    for beat in timeline["beats"]:
        if not beats or beat["time"] > beats[-1]["time"]:
            beats.append(beat)
    timeline = {**timeline, "beats": beats}
    beat_times = [b["time"] for b in beats]
    tempo_map = TempoMap(beat_times)
    conductor = [(0, 0, smf.text(0x03, result["source"].get("name") or "mirflow"))]
    conductor += tempo_map.events() + bar_events(timeline, summary, tempo_map)
    keys = timeline.get("keys") or ([{"start": 0.0, "label": summary["key"]["label"]}] if "key" in summary else [])
    previous = None
    for segment in keys:
        found = key_fifths(segment["label"])
        if found is not None and found != previous:
            conductor.append((tempo_map.tick(segment["start"]), 0, smf.key_signature(*found)))
            previous = found
    for section in timeline.get("sections") or []:
        name = " ".join(str(part) for part in (section["label"], section.get("function")) if part)
        conductor.append((tempo_map.tick(section["start"]), 1, smf.text(0x06, name)))
    chord_events = [(0, 0, smf.text(0x03, "Chords"))]
    for chord in timeline.get("chords") or []:
        pitches = chord_pitches(chord["label"])
        if not pitches:  # N (no chord) and X: neither a marker nor notes
            continue
        start, end = tempo_map.tick(chord["start"]), tempo_map.tick(chord["end"])
        conductor.append((start, 2, smf.text(0x06, chord["label"])))
        if end > start:
            chord_events += [(start, 2, smf.note(True, 0, p, CHORD_VELOCITY)) for p in pitches]
            chord_events += [(end, 1, smf.note(False, 0, p, 0)) for p in pitches]
    end = tempo_map.tick(result["source"]["duration"])
    return smf.midi_file([smf.track(conductor, end), smf.track(chord_events, end)])


def export_mid(result: dict) -> list[tuple[str, bytes]]:
    """``.mid``: the Standard MIDI File of the timeline."""
    return [(".mid", render(result))]


@mirflow.hookimpl
def register_exporters(register):
    register("mid", export_mid)
