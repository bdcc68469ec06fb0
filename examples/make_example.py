"""Regenerate examples/example.ogg: 60 s, 100 BPM, 4/4, A minor (Am F Dm E).

    .venv/bin/python examples/make_example.py
"""

from pathlib import Path

import soundfile

from mirflow.synth import make_song

song = make_song(["A:min", "F:maj", "D:min", "E:maj"], bpm=100, duration=60.0, key="A minor", seed=7)
target = Path(__file__).with_name("example.ogg")
# libsndfile's Vorbis encoder crashes on one large write: feed it in blocks.
with soundfile.SoundFile(target, "w", song.sample_rate, 1, format="OGG", subtype="VORBIS") as out:
    for first in range(0, len(song.samples), 8192):
        out.write(song.samples[first:first + 8192])
print(f"wrote {target} ({target.stat().st_size // 1024} KiB, {len(song.beats)} beats, {len(song.chords)} chords)")
