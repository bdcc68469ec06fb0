"""structure: the sections of a song (A B A B C B), bar-accurate, with a guess at each one's function.

Per chunk, frame features from the shared ones (the key's STFT chroma, and MFCCs and
loudness from the same STFT as the loudness curves: no spectrogram of its own); at the merge,
on the whole track, the sections (:mod:`.segment`, :mod:`.boundaries`, :mod:`.labels` and
:mod:`.functions` say how; docs/sections.md measures them) on the pipeline's downbeats, or
beats, or a half-second grid. The chunked result equals the whole-file one: every decision
is taken once, on the stitched features.
"""

from __future__ import annotations

import numpy as np

import mirflow
from mirflow.aggregate import merge_curve
from mirflow.dsp.features import LibrosaAnalyzer, chroma, frame_times, timbre

from .boundaries import adaptive_threshold, min_units, phrase_weights
from .functions import FUNCTIONS, guess_functions
from .labels import cluster, segment_similarity, split_repeats
from .segment import (
    QUARTERS,
    activity,
    aligned_similarity,
    diagonal_sums,
    foote_novelty,
    harmonic_similarity,
    letter,
    pick_boundaries,
    repetition_novelty,
    scaled,
    set_novelty,
    timbre_similarity,
    unit_grid,
    unit_length,
    unit_means,
)

__all__ = ["Sections", "FUNCTIONS", "find_sections"]

SILENT_DB = -60.0  # a track whose frames are all quieter than this has no sections
QUIET_DB = 40.0  # a unit this far below the song's median unit holds no sound (no intro or ending)
# Texture change, harmonic set change, repetition change: chosen on the dev split of
# benchmarks/structure.py (texture is the surest cue there; the other two find the boundaries
# between sections of the same arrangement); kept for benchmarks/sections.py's dev split.
WEIGHTS = (0.5, 0.25, 0.25)
END_SHARE = 0.5  # the shortest intro or outro, as a share of the shortest section
SAME_CHORDS = 0.85  # aligned harmonic similarity of two sections that play the same chords
CHROMA, MFCC_FIRST = 12, 3  # feature columns: 12 chroma, then MFCC 1-12 and loudness (dB)


class Sections(LibrosaAnalyzer):
    """Sections (intro, verse, chorus, ...) on the bar grid: boundaries, repetition letters, functions."""

    name = "structure.sections"
    version = "4"
    params = {
        "min_bars": mirflow.Param(4, int, min=1, max=64, help="shortest section, in bars"),
        "kernel_bars": mirflow.Param(4, int, min=1, max=32, help="bars each side of a candidate boundary that the novelty compares"),
        "min_seconds": mirflow.Param(8.0, float, min=0.0, max=120.0, help="shortest section, in seconds"),
        "threshold": mirflow.Param(0.3, float, min=0.0, max=1.0,
                                   help="novelty (0-1 of the song's strongest) a boundary needs at least"),
        "spread": mirflow.Param(-0.5, float, min=-5.0, max=5.0,
                                help="a boundary's novelty above the median of the song's novelty peaks, "
                                     "in median absolute deviations (below it when negative)"),
        "same_material": mirflow.Param(0.55, float, min=0.0, max=1.0,
                                       help="similarity (0 = two bars of the song at random, 1 = the same) "
                                            "above which two sections get the same letter"),
        "harmonic_weight": mirflow.Param(0.5, float, min=0.0, max=1.0,
                                         help="share of harmony (vs. timbre) in the similarity of two sections"),
        "min_duration": mirflow.Param(30.0, float, min=0.0, max=600.0,
                                      help="shorter tracks are one section"),
    }
    requires = {
        "beats": mirflow.Requirement("beats", optional=True, at_merge=True),
        "chords": mirflow.Requirement("chords", optional=True, at_merge=True),
    }
    outputs = {"sections": mirflow.SEGMENTS, "form": mirflow.LABEL}
    chunk_outputs = {"features": mirflow.CURVE}

    def calls_librosa(self) -> bool:
        return False  # STFT chroma and timbre are numpy's (mirflow.dsp.librosa_port)

    def analyze(self, chunk, inputs):
        """Frame features on the track's 2048-sample grid: chroma, MFCC 1-12, loudness (dB)."""
        times = frame_times(chunk)
        frames = len(times)
        values = np.zeros((frames, CHROMA + 13), dtype=np.float32)
        values[:, -1] = -100.0
        if not chunk.is_silent() and frames > 0:
            found = timbre(chunk)[:, :frames]
            values[:found.shape[1], :CHROMA] = chroma(chunk, "stft")[:, :frames].T
            values[:found.shape[1], CHROMA:CHROMA + 12] = found[MFCC_FIRST:MFCC_FIRST + 12].T
            values[:found.shape[1], -1] = 20 * np.log10(np.maximum(found[0], 1e-5))
        return {"features": {"times": times, "values": values}}

    def merge(self, parts, track):
        """Stitch the chunks' frame features, then find the sections once, on the whole track."""
        curve = merge_curve(parts, "features")
        values = np.asarray(curve["values"], dtype=float).reshape(len(curve["times"]), -1)
        sections = find_sections(np.asarray(curve["times"], dtype=float), values, track.duration, self.config,
                                 beats=track.inputs.get("beats"), chords=track.inputs.get("chords"))
        return {"sections": sections, "form": form_of(sections)}


def find_sections(times: np.ndarray, values: np.ndarray, duration: float, config: dict,
                  beats: list[dict] | None = None, chords: list[dict] | None = None) -> list[dict]:
    """The sections of a track from its stitched frame features (see :mod:`.segment`)."""
    if len(times) == 0 or duration <= 0 or float(np.max(values[:, -1])) < SILENT_DB:
        return []
    grid = unit_grid(beats, duration)
    units = len(grid.edges) - 1
    shortest = min_units(grid.edges, grid.per_bar, config["min_bars"], config["min_seconds"])
    if duration < config["min_duration"] or units < 2 * shortest:
        return [_section(0.0, duration, 0, None, 1.0, grid.bars[0] if grid.bars else None)]
    parts = QUARTERS if grid.kind == "bar" else 1
    chroma_units = unit_length(unit_means(times, values[:, :CHROMA], grid.edges, parts))
    if chords:
        chroma_units = unit_length(chroma_units + chord_units(chords, times, grid.edges, parts))
    timbre_units = unit_means(times, values[:, CHROMA:], grid.edges, 1)[:, 0, :]  # MFCC 1-12, loudness
    textures = np.hstack([timbre_units, activity(times, values[:, CHROMA:], grid.edges)])
    harmonic, texture = harmonic_similarity(chroma_units), timbre_similarity(textures)
    half = max(config["kernel_bars"] * grid.per_bar, shortest // 2)
    novelty = scaled(WEIGHTS[0] * scaled(foote_novelty(texture, half)) + WEIGHTS[1] * scaled(set_novelty(harmonic, half))
                     + WEIGHTS[2] * scaled(repetition_novelty(harmonic, embed=grid.per_bar, smooth=grid.per_bar)))
    weighted = novelty * phrase_weights(novelty, grid.per_bar) if grid.kind != "frame" else novelty
    threshold = adaptive_threshold(weighted, config["spread"], config["threshold"])
    ends = max(1, int(np.ceil(shortest * END_SHARE)))  # an intro or outro may be shorter than the body's sections
    edges = [0, *pick_boundaries(weighted, shortest, threshold, ends), units]
    segments = list(zip(edges[:-1], edges[1:]))
    sums = diagonal_sums(harmonic)  # aligned similarities of segments, for the letters and the functions
    similar = segment_similarity(segments, sums, chroma_units, texture, config["harmonic_weight"])
    labels = cluster(similar, config["same_material"])
    segments, labels = split_repeats(segments, labels, weighted, shortest, reach=grid.per_bar, end_units=ends,
                                     end_evidence=threshold, sounding=sounding(timbre_units[:, -1]))
    loudness = [float(timbre_units[a:b, -1].mean()) for a, b in segments]
    borrowed = [{labels[j] for j in range(len(segments))
                 if labels[j] != labels[i] and aligned_similarity(sums, segments[i], segments[j]) >= SAME_CHORDS}
                for i in range(len(segments))]
    functions = guess_functions(labels, loudness, borrowed)
    sections = []
    for n, ((a, b), label, function) in enumerate(zip(segments, labels, functions)):
        start = 0.0 if n == 0 else float(grid.edges[a])
        end = duration if n == len(segments) - 1 else float(grid.edges[b])
        confidence = 1.0 if n == 0 else float(novelty[a])
        sections.append(_section(start, end, label, function, confidence, grid.bars[a] if grid.bars else None))
    return sections


def sounding(loudness: np.ndarray) -> np.ndarray:
    """Per unit: whether it holds sound, i.e. is less than ``QUIET_DB`` below the song's median
    unit (a quiet intro bar of a ballad is 25 dB down; the digital silence after the last bar,
    where the beat tracker may still put a downbeat, 70 dB)."""
    return loudness >= float(np.median(loudness)) - QUIET_DB


def _section(start, end, label, function, confidence, bar) -> dict:
    return {"start": start, "end": end, "label": letter(label), "function": function,
            "confidence": round(confidence, 3), "start_bar": bar}


def chord_units(chords: list[dict], times: np.ndarray, edges: np.ndarray, parts: int) -> np.ndarray:
    """The chord step's pitch classes laid on the frames, then averaged like the chroma."""
    from mirflow.harmony import pitch_classes

    frames = np.zeros((len(times), 12))
    starts = np.array([c["start"] for c in chords])
    index = np.searchsorted(starts, times, side="right") - 1
    vectors = np.array([pitch_classes(c["label"]) for c in chords] + [np.zeros(12)])
    inside = (index >= 0) & (times < np.array([c["end"] for c in chords])[np.clip(index, 0, None)])
    frames[inside] = vectors[index[inside]]
    return unit_length(unit_means(times, frames, edges, parts))


def form_of(sections: list[dict]) -> dict:
    """``summary.form``: the letters in order, and how many sections."""
    if not sections:
        return {"label": None, "confidence": 0.0, "sections": 0}
    return {"label": " ".join(s["label"] for s in sections),
            "confidence": float(np.mean([s["confidence"] for s in sections])), "sections": len(sections)}


@mirflow.hookimpl
def register_analyzers(register):
    register(Sections)
