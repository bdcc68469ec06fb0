"""Essentia's model zoo on disk: where models live, what their metadata says, how to get them.

Each model is a TensorFlow graph (``NAME.pb``) with zoo metadata beside it (``NAME.json``:
name, sample rate, the graph's input/output node names, classes). The models are licensed
CC BY-NC-SA 4.0 by the Music Technology Group (UPF); ``mirflow models pull`` says so.
Nothing here imports TensorFlow or Essentia.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ZOO_URL = "https://essentia.upf.edu/models/"
LICENSE = ("Essentia's models are licensed CC BY-NC-SA 4.0 (Music Technology Group, Universitat Pompeu Fabra): "
           "non-commercial use, share alike; see https://essentia.upf.edu/models.html")

EFFNET, MUSICNN, TEMPOCNN = "discogs-effnet-bs64-1", "msd-musicnn-1", "deeptemp-k16-3"
HEAD_TASKS = ("danceability", "mood_happy", "mood_sad", "mood_aggressive", "mood_relaxed", "mood_party",
              "voice_instrumental")

# Known models: name -> path under the zoo URL (without .pb / .json).
CATALOGUE = {
    EFFNET: "feature-extractors/discogs-effnet/discogs-effnet-bs64-1",
    MUSICNN: "feature-extractors/musicnn/msd-musicnn-1",
    TEMPOCNN: "tempo/tempocnn/deeptemp-k16-3",
    "genre_discogs400-discogs-effnet-1": "classification-heads/genre_discogs400/genre_discogs400-discogs-effnet-1",
    "approachability_2c-discogs-effnet-1": "classification-heads/approachability/approachability_2c-discogs-effnet-1",
    "engagement_2c-discogs-effnet-1": "classification-heads/engagement/engagement_2c-discogs-effnet-1",
    **{f"{task}-discogs-effnet-1": f"classification-heads/{task}/{task}-discogs-effnet-1" for task in HEAD_TASKS},
    **{f"{task}-msd-musicnn-1": f"classification-heads/{task}/{task}-msd-musicnn-1" for task in HEAD_TASKS},
}

# What the zoo's graphs look like (the metadata says it too; these fill in where it does not).
FAMILIES = {
    EFFNET: {"input": "serving_default_melspectrogram", "predictions": "PartitionedCall:0",
             "embeddings": "PartitionedCall:1", "rate": 16000, "patch": (128, 96), "hop": 62, "fixed_batch": 64},
    MUSICNN: {"input": "model/Placeholder", "predictions": "model/Sigmoid", "embeddings": "model/dense/BiasAdd",
              "rate": 16000, "patch": (187, 96), "hop": 93, "fixed_batch": None},
    TEMPOCNN: {"input": "input", "predictions": "output", "embeddings": None, "rate": 11025, "patch": (256, 40),
               "hop": 128, "fixed_batch": None},
}


class ModelError(Exception):
    """A model that is missing, malformed or cannot be downloaded (the message says which and why)."""


def models_dir() -> Path:
    """MIRFLOW_MODELS, else $XDG_DATA_HOME/mirflow/models (~/.local/share/mirflow/models)."""
    if os.environ.get("MIRFLOW_MODELS"):
        return Path(os.environ["MIRFLOW_MODELS"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "mirflow" / "models"


@dataclass
class ModelInfo:
    """One model's metadata, read from its zoo ``.json``."""

    name: str
    graph: Path
    family: str  # EFFNET, MUSICNN, TEMPOCNN for the extractors; "head" for heads
    input: str
    output: str  # the predictions node (tags, styles, classes, tempo classes)
    classes: list[str] = field(default_factory=list)
    embeddings: str | None = None  # extractors: the node heads read
    embedding_model: str | None = None  # heads: the extractor whose embeddings they read
    sample_rate: int = 16000

    @property
    def install(self) -> str:
        return f"mirflow models pull {self.name}"


def _node(entry: dict) -> str:
    """A schema entry's graph node name (``model/Placeholder``, ``PartitionedCall:1``)."""
    return entry.get("name", "")


def read_metadata(path: Path) -> ModelInfo:
    """Parse zoo metadata (``NAME.json``) into a ModelInfo; the graph is ``NAME.pb`` beside it."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: not readable zoo metadata ({error})") from None
    name = path.stem
    schema = meta.get("schema") or {}
    inputs, outputs = schema.get("inputs") or [], schema.get("outputs") or []
    inference = meta.get("inference") or {}
    family = next((f for f in FAMILIES if name == f or name.startswith(f.rsplit("-", 1)[0] + "-")), None)
    if family is None and name.startswith("deeptemp"):
        family = TEMPOCNN
    classes = [str(c) for c in meta.get("classes") or []]
    if family is not None:
        known = FAMILIES[family]
        purpose = {o.get("output_purpose"): _node(o) for o in outputs if o.get("name")}
        return ModelInfo(name, path.with_suffix(".pb"), family, _node(inputs[0]) if inputs else known["input"],
                         purpose.get("predictions") or known["predictions"], classes,
                         embeddings=purpose.get("embeddings") or known["embeddings"],
                         sample_rate=int(inference.get("sample_rate") or known["rate"]))
    embedding = (inference.get("embedding_model") or {}).get("model_name")
    if not embedding:
        embedding = EFFNET if "discogs-effnet" in name else MUSICNN if "msd-musicnn" in name else None
    if embedding is None:
        raise ModelError(f"{path}: cannot tell which model family {name!r} belongs to "
                         "(not an effnet/musicnn/tempocnn model or a head naming its embedding_model)")
    if not inputs or not outputs:
        raise ModelError(f"{path}: metadata has no schema.inputs/outputs (node names)")
    predictions = next((o for o in outputs if o.get("output_purpose") == "predictions"), outputs[0])
    return ModelInfo(name, path.with_suffix(".pb"), "head", _node(inputs[0]), _node(predictions), classes,
                     embedding_model=embedding, sample_rate=int(inference.get("sample_rate") or 16000))


def find(name: str, directory: Path | None = None) -> ModelInfo | None:
    """The installed model ``name`` (both files present), or None."""
    directory = directory or models_dir()
    meta = directory / f"{name}.json"
    if not meta.exists() or not meta.with_suffix(".pb").exists():
        return None
    return read_metadata(meta)


def missing(name: str, directory: Path | None = None) -> str | None:
    """Why the model ``name`` (and, for a head, its embedding model) cannot be used; None if it can."""
    directory = directory or models_dir()
    try:
        info = find(name, directory)
    except ModelError as error:
        return str(error)
    if info is None:
        how = f"mirflow models pull {name}" if name in CATALOGUE else f"mirflow models add {name}.pb {name}.json"
        return f"model {name!r} is not installed in {directory}; get it with: {how}"
    if info.embedding_model:
        return missing(info.embedding_model, directory)
    return None


def installed(directory: Path | None = None) -> list[str]:
    directory = directory or models_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.json") if p.with_suffix(".pb").exists())


def add(graph: Path, metadata: Path, directory: Path | None = None) -> Path:
    """Copy a model's ``.pb`` and ``.json`` into the models folder (atomically)."""
    directory = directory or models_dir()
    if graph.suffix != ".pb" or not graph.is_file():
        raise ModelError(f"{graph}: expected a TensorFlow graph file NAME.pb")
    if not metadata.is_file():
        raise ModelError(f"{metadata}: no such metadata file (the zoo's NAME.json)")
    read_metadata(metadata)  # refuse what the runner could not read
    directory.mkdir(parents=True, exist_ok=True)
    name = metadata.stem
    for source, target in ((graph, directory / f"{name}.pb"), (metadata, directory / f"{name}.json")):
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(source.read_bytes())
        os.replace(partial, target)
    return directory / f"{name}.pb"


def pull(name: str, directory: Path | None = None, base_url: str | None = None, say=print) -> Path:
    """Download a known model's ``.json`` and ``.pb`` from the zoo into the models folder.

    Each file goes to ``NAME.ext.part`` first (a broken download resumes from there with an
    HTTP Range request, or restarts if the server ignores it) and is renamed into place when
    complete; the metadata must parse before the model counts as installed.
    """
    if name not in CATALOGUE:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(CATALOGUE))}")
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    base_url = base_url or os.environ.get("MIRFLOW_MODELS_URL") or ZOO_URL
    say(LICENSE)
    for ext in (".json", ".pb"):
        url = base_url.rstrip("/") + "/" + CATALOGUE[name] + ext
        target = directory / f"{name}{ext}"
        _download(url, target)
        say(f"{target}  ({target.stat().st_size} bytes)")
    read_metadata(directory / f"{name}.json")
    return directory / f"{name}.pb"


def _download(url: str, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have and response.status == 206
            expected = response.headers.get("Content-Length")
            with open(partial, "ab" if resumed else "wb") as out:
                written = 0
                while block := response.read(1 << 20):
                    out.write(block)
                    written += len(block)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the partial file is already complete
            os.replace(partial, target)
            return
        raise ModelError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ModelError(f"{url}: download failed ({getattr(error, 'reason', error)}); run the command again "
                         "to resume") from None
    if expected is not None and written != int(expected):
        raise ModelError(f"{url}: got {written} of {expected} bytes; run the command again to resume")
    os.replace(partial, target)
