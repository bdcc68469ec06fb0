"""A second, differently built source of songs with sections: arranger-keyboard style.

Where ``gm_forms`` gives every part its own instruments and figures, here a *style* is a set
of hand-written 16-step patterns (drums, bass, comping), as an arranger keyboard or a backing
band has them: a Main A groove for verses, a busier Main B for choruses, a fill in the last
bar before a new section, an intro and an ending variant. The instruments stay the same all
song long; sections differ by groove variation and chords only, which is harder than
``gm_forms``. Songs of 70-125 s.

Two splits. ``test`` (seeds 400-409, the csound GM bank ``sf_GMbank``, a soundfont neither
split of ``gm_forms`` uses): the first corpus, held out, its songs unchanged since it was
written (same plan draws, same MIDI, same truth). ``dev`` (seeds 500-523, FluidR3, other
samples than the test split's) is where the rules may be tuned, and it holds the forms the test
split showed the rules miss, each chosen by seed from a second random stream (so the test
plans draw exactly what they drew before): intros of 1, 2 or 4 bars (some with the whole
band, on the chorus chords), endings of 1 or 2 bars (a stop hit, or a held tag), the last chorus twice back to back
with or without a fill between, half-time choruses, drumless first verses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gm_corpus import CACHE as GM_CACHE  # noqa: E402
from gm_corpus import INTERVALS, NAMES, PPQ, progression, synthesize  # noqa: E402
from gm_corpus import save_midi  # noqa: E402

CACHE = GM_CACHE.parent / "band-corpus"
SOUNDFONT = "/usr/share/sounds/sf2/sf_GMbank.sf2"
SEEDS = list(range(400, 410))
SPLITS = {"test": (SEEDS, SOUNDFONT), "dev": (list(range(500, 524)), "/usr/share/sounds/sf2/FluidR3_GM.sf2")}
# style: (BPM range, programs (comp, bass), patterns). A pattern: 16 steps, "x" hit, "o" accent.
STYLES = {
    "rock": ((100, 132), (29, 34), {
        "A": {36: "x.......x.......", 38: "....x.......x...", 42: "x.x.x.x.x.x.x.x."},
        "B": {36: "x.....x.x.x.....", 38: "....x.......x..x", 46: "x.x.x.x.x.x.x.x.", 49: "x..............."},
        "bass": {"A": "x.......x.......", "B": "x.x.x.x.x.x.x.x."}, "comp": {"A": "x.......x.......", "B": "x.x.x.x.x.x.x.x."}}),
    "country": ((110, 140), (25, 33), {
        "A": {36: "x.......x.......", 38: "....x.......x...", 42: "..x...x...x...x."},
        "B": {36: "x...x...x...x...", 38: "....x.......x...", 42: "x.x.x.x.x.x.x.x."},
        "bass": {"A": "x.......x.......", "B": "x...x...x...x..."}, "comp": {"A": "..x...x...x...x.", "B": "x.xxx.xxx.xxx.xx"}}),
    "bossa": ((90, 120), (24, 32), {
        "A": {36: "x..x..x.x..x..x.", 37: "x..x..x...x..x..", 42: "x.x.x.x.x.x.x.x."},
        "B": {36: "x..x..x.x..x..x.", 37: "x..x..x...x..x..", 51: "x.x.x.x.x.x.x.x.", 44: "....x.......x..."},
        "bass": {"A": "x..x....x..x....", "B": "x..x..x.x..x..x."}, "comp": {"A": "x..x..x...x..x..", "B": "x.xx.xx.x.xx.xx."}}),
    "disco": ((112, 126), (4, 38), {
        "A": {36: "x...x...x...x...", 42: "..x...x...x...x."},
        "B": {36: "x...x...x...x...", 39: "....x.......x...", 46: "..x...x...x...x.", 42: "x.xxx.xxx.xxx.xx"},
        "bass": {"A": "x.x.x.x.x.x.x.x.", "B": "x.xxx.xxx.xxx.xx"}, "comp": {"A": "....x.......x...", "B": "..x...x...x...x."}}),
    "ballad": ((66, 84), (0, 32), {
        "A": {36: "x.........x.....", 37: "....x.......x...", 42: "x...x...x...x..."},
        "B": {36: "x.........x.....", 38: "....x.......x...", 42: "x.x.x.x.x.x.x.x.", 49: "x..............."},
        "bass": {"A": "x...............", "B": "x.......x......."}, "comp": {"A": "x...............", "B": "x...x...x...x..."}}),
}
FILL = {38: "........x.x.xxxx", 45: "............x.x.", 36: "x..............."}
# Half-time feel (dev forms only): kick on 1, snare on 3, the cymbal in quarters.
HALF_TIME = {36: "x...............", 38: "........x.......", 42: "x...x...x...x...", 49: "x..............."}


def plan(seed: int) -> dict:
    """Style, tempo, key, chord charts and form of a song from its seed."""
    rng = np.random.default_rng(seed)
    style = list(STYLES)[seed % len(STYLES)]
    (low, high), programs, _ = STYLES[style]
    bpm = float(rng.integers(low, high + 1))
    key = f"{NAMES[int(rng.integers(12))]} {'major' if rng.random() < 0.7 else 'minor'}"
    charts = []
    while len(charts) < 3:
        loop = progression(key, rng, rng.random() < 0.3)
        if loop not in charts:
            charts.append(loop)
    verse, chorus, bridge = charts
    bars_seconds = 4 * 60 / bpm
    form = [("intro", "intro", verse, int(rng.choice([2, 4]))), ("verse", "A", verse, 8), ("chorus", "B", chorus, 8),
            ("verse", "A", verse, 8), ("chorus", "B", chorus, 8)]
    if (sum(f[3] for f in form) + 18) * bars_seconds < 125:
        form += [("bridge", "A", bridge, 8)]
    form += [("chorus", "B", chorus, 8), ("outro", "ending", chorus, 2)]
    if seed >= 500:
        form = dev_form(seed, verse, chorus, bridge, bars_seconds)
    name = f"band{seed}_{style}_{bpm:g}bpm_{key.replace(' ', '_')}"
    return {"name": name, "style": style, "bpm": bpm, "key": key, "form": form, "programs": programs}


def dev_form(seed: int, verse, chorus, bridge, bars_seconds: float) -> list:
    """The dev split's forms: the test split's form with the variations the rules missed there.

    Drawn from a stream of their own (``default_rng([seed, 1])``), and cycled by seed so that
    every variation occurs several times among the 24 songs. Grooves beyond the test split's
    ("intro", "A", "B", "ending"): "band" (an intro with the whole band, Main A), "dry" (Main A
    without drums), "half" (Main B with half-time drums), "B-" (Main B without the fill into
    the next section: a chorus played straight into its repeat), "tag" (a held chord with a
    cymbal, then the stop: a 2-bar ending that is played, not silent).
    """
    rng = np.random.default_rng([seed, 1])
    k = seed - 500
    # The test split's intro (hi-hat and comping on the verse chords), or the whole band on the
    # chorus chords (an intro with the whole band on the verse's chords would be the verse).
    intro = ("intro", "intro", verse, [1, 2, 4][k % 3]) if k % 2 else ("intro", "band", chorus, [1, 2, 4][k % 3])
    ending = ("outro", "tag" if k % 4 == 3 else "ending", chorus, [1, 2][(k // 3) % 2])
    chorus_groove = "half" if k % 5 in (1, 3) else "B"
    back_to_back = k % 3 != 2  # two of three songs end on the chorus twice
    first_verse = "dry" if k % 4 in (1, 2) else "A"
    verse_bars = int(rng.choice([8, 8, 16]))
    form = [intro, ("verse", first_verse, verse, verse_bars), ("chorus", chorus_groove, chorus, 8),
            ("verse", "A", verse, 8), ("chorus", chorus_groove, chorus, 8)]
    if rng.random() < 0.5 and (sum(f[3] for f in form) + 26) * bars_seconds < 125:
        form += [("bridge", "A", bridge, 8)]
    if back_to_back:
        form += [("chorus", chorus_groove if k % 2 else "B-", chorus, 8)]
    form += [("chorus", chorus_groove, chorus, 8), ending]
    return form


def write_midi(song: dict, path: Path) -> tuple[list, float]:
    """The song as MIDI; returns its section truth and duration."""
    import mido

    patterns = STYLES[song["style"]][2]
    step = PPQ // 4
    events: list = [(0, 0, mido.Message("program_change", channel=0, program=song["programs"][0])),
                    (0, 0, mido.Message("program_change", channel=1, program=song["programs"][1]))]
    rng = np.random.default_rng(len(song["name"]))

    def note(channel, pitch, at, length, velocity):
        velocity = int(np.clip(velocity + rng.integers(-8, 9), 20, 127))
        events.append((at, 1, mido.Message("note_on", channel=channel, note=int(pitch), velocity=velocity)))
        events.append((at + length, 0, mido.Message("note_off", channel=channel, note=int(pitch))))

    def stop_hit(tones, bass, at, length, velocity):
        """The band's last chord held ``length`` ticks, with a crash and a kick on it."""
        for pitch in tones + [bass]:
            note(0 if pitch >= 60 else 1, pitch, at, length, velocity)
        note(9, 49, at, 8 * step, 110)
        note(9, 36, at, 4 * step, 110)

    bar_seconds, tick, truth = 4 * 60 / song["bpm"], 0, []
    for n, (name, groove, chart, bars) in enumerate(song["form"]):
        truth.append((len([b for f in song["form"][:n] for b in range(f[3])]) * bar_seconds, name))
        variant = "A" if groove in ("intro", "A", "band", "dry") else "B"
        for bar in range(bars):
            root, quality = chart[bar % len(chart)]
            tones = [60 + (root + i) % 12 for i in INTERVALS[quality]]
            last = bar == bars - 1 and n + 1 < len(song["form"]) and groove != "B-"
            if groove == "tag":  # a held chord with a ride swell, the stop hit in the last bar
                if bar == 0:
                    for pitch in tones + [36 + root]:
                        note(0 if pitch >= 60 else 1, pitch, tick, 16 * step * (bars - 1) or 8 * step, 80)
                    for s in range(0, 16, 2):
                        note(9, 51, tick + s * step, step, 60 + 3 * s)
                if bar == bars - 1:
                    stop_hit(tones, 36 + root, tick, 4 * step, 100)
                tick += 16 * step
                continue
            if groove == "ending":
                if bar == 0:
                    stop_hit(tones, 36 + root, tick, 8 * step, 90)
                tick += 16 * step
                continue
            drums = dict(patterns[variant]) if groove != "intro" else {42: patterns["A"].get(42, "x.x.x.x.x.x.x.x.")}
            if groove == "half":
                drums = dict(HALF_TIME)
            if groove == "dry":
                drums = {}
            if last and groove not in ("intro", "dry"):
                drums = {k: v[:8] + "........" for k, v in drums.items() if k != 49} | FILL
            if bar:
                drums.pop(49, None)
            for pitch, hits in drums.items():
                for s, hit in enumerate(hits):
                    if hit == "x":
                        note(9, pitch, tick + s * step, step, 100 if s % 4 == 0 else 78)
            for s, hit in enumerate(patterns["comp"][variant]):
                if hit == "x":
                    for pitch in tones:
                        note(0, pitch, tick + s * step, 2 * step - 10, 72 if variant == "A" else 84)
            if groove != "intro":
                for s, hit in enumerate(patterns["bass"][variant]):
                    if hit == "x":
                        note(1, 36 + root + (7 if s in (8, 12) and variant == "B" else 0), tick + s * step, 2 * step - 10, 90)
            tick += 16 * step
    duration = tick / PPQ * 60 / song["bpm"] + 2.0
    save_midi(mido.MidiFile(ticks_per_beat=PPQ), [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song["bpm"])))],
              events, path)
    return [(start, truth[k + 1][0] if k + 1 < len(truth) else duration, name)
            for k, (start, name) in enumerate(truth)], duration


def band_corpus(split: str = "test"):
    """The split's songs (rendered on first use into the cache), each with ``.sections.lab`` truth."""
    from corpus import Piece

    seeds, soundfont = SPLITS[split]
    folder = CACHE if split == "test" else CACHE.parent / f"band-corpus-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    pieces = []
    for seed in seeds:
        song = plan(seed)
        stem = folder / song["name"]
        truth, duration = write_midi(song, Path(f"{stem}.mid"))
        audio = synthesize(Path(f"{stem}.mid"), Path(f"{stem}.flac"), duration, Path(soundfont))
        Path(f"{stem}.sections.lab").write_text("".join(f"{s:.6f}\t{e:.6f}\t{n}\n" for s, e, n in truth))
        pieces.append(Piece(song["name"], audio, [Path(f"{stem}.sections.lab")]))
    return pieces


if __name__ == "__main__":
    for piece in band_corpus(sys.argv[1] if len(sys.argv) > 1 else "test"):
        print(piece.name)
