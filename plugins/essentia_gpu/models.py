"""Analyzers that run Essentia's zoo models in the GPU lane.

``essentia_gpu.model`` runs an embedding model (discogs-effnet, msd-musicnn: their own
predictions, 400 styles or 50 tags) or a classification head on its embeddings
(danceability, moods, genre_discogs400, voice_instrumental, approachability, engagement…),
named by ``model``. ``essentia_gpu.tempocnn`` runs TempoCNN (deeptemp-k16-3). The CPU lane
prepares mel patches; the GPU lane runs every patch of a batch of chunks at once. A head's
embeddings are computed once per chunk in the GPU worker and reused by every head on the
same extractor. Per chunk: each class's activation per patch; per track: the activation
curve, the mean per class, and the top class.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import mirflow

from .zoo import CATALOGUE, TEMPOCNN, ModelError, find, missing, models_dir

MODELS_DIR = mirflow.Param("", str, help="folder of the models (default: MIRFLOW_MODELS, else ~/.local/share/mirflow/models)")


@dataclass
class Patches:
    """What the CPU lane hands the GPU lane for one chunk (picklable)."""

    path: str
    chunk: int
    patches: np.ndarray
    times: np.ndarray  # chunk time of each patch's centre


class ZooModel(mirflow.Analyzer):
    """What both model analyzers share: model lookup, the two lanes, the embedding cache."""

    resource = "gpu"
    libraries = ("essentia", "tensorflow")
    extra = "models"
    code_licence = "AGPL-3.0 (Essentia), Apache-2.0 (TensorFlow)"
    model_licence = "CC BY-NC-SA 4.0 (Essentia's model zoo)"
    outputs = {"activations": mirflow.CURVE, "classes": mirflow.SCALAR, "label": mirflow.LABEL}
    chunk_outputs = {"activations": mirflow.CURVE}
    embedding_cache = OrderedDict()  # (extractor, file, chunk) -> embeddings, per GPU worker
    CACHE_ITEMS = 256

    @staticmethod
    def folder(params) -> Path | None:
        return Path(params["models_dir"]).expanduser() if params["models_dir"] else None

    @classmethod
    def unavailable(cls, params) -> str | None:
        return missing(params["model"], cls.folder(params))

    def info(self):
        folder = self.folder(self.config)
        info = find(self.config["model"], folder)
        if info is None:
            raise ModelError(missing(self.config["model"], folder))
        return info, (find(info.embedding_model, folder) if info.embedding_model else None)

    def setup_features(self):
        import essentia

        essentia.log.infoActive = False
        self.model_info, self.embedding_info = self.info()
        self.family = (self.embedding_info or self.model_info).family

    def prepare(self, chunk, inputs):
        from .runner import mel_patches

        patches, times = mel_patches(chunk.samples, self.family)
        return Patches(chunk.path, chunk.index, patches, times)

    def setup(self, device):
        from . import runner

        self.model_info, self.embedding_info = self.info()
        self.device = runner.devices(device)
        self.graphs = runner.load(self.model_info, self.embedding_info)

    def analyze_batch(self, items, inputs):
        """All patches of all items through the graph(s) at once, then split per item."""
        extractor = self.embedding_info or self.model_info
        node = f"{extractor.name}/{extractor.embeddings if self.embedding_info else extractor.output}"
        todo = [i for i, item in enumerate(items) if self._cached(node, item) is None]
        if todo:
            values = self.graphs["extractor"](np.concatenate([items[i].patches for i in todo]))[0]
            for i, part in zip(todo, np.split(values, np.cumsum([len(items[i].patches) for i in todo])[:-1])):
                self._remember(node, items[i], part)
        outputs = [self._cached(node, item) for item in items]
        if "head" in self.graphs:
            joined = self.graphs["head"](np.concatenate(outputs))[0]
            outputs = np.split(joined, np.cumsum([len(o) for o in outputs])[:-1])
        return [{"activations": {"times": item.times, "values": np.asarray(values, dtype=np.float32)}}
                for item, values in zip(items, outputs)]

    def _cached(self, extractor: str, item: Patches):
        return self.embedding_cache.get((extractor, item.path, item.chunk, len(item.patches)))

    def _remember(self, extractor: str, item: Patches, values: np.ndarray) -> None:
        self.embedding_cache[(extractor, item.path, item.chunk, len(item.patches))] = values
        while len(self.embedding_cache) > self.CACHE_ITEMS:
            self.embedding_cache.popitem(last=False)

    def merge(self, parts, track):
        """The activation curves joined at seams, then summarized over the whole track."""
        from mirflow.aggregate import merge_curve

        curve = merge_curve(parts, "activations")
        values = np.asarray(curve["values"], dtype=float)
        return {"activations": curve, **self.summarize(np.asarray(curve["times"]), values)}

    def summarize(self, times: np.ndarray, values: np.ndarray) -> dict:
        """Per-track values from the whole track's activation curve."""
        classes = self.model_info.classes or [str(i) for i in range(values.shape[1] if values.ndim > 1 else 1)]
        if len(values) == 0:
            return {"classes": {"value": None, "confidence": 0.0}, "label": {"label": None, "confidence": 0.0}}
        means = values.reshape(len(values), -1).mean(axis=0)
        top = int(np.argmax(means))
        return {"classes": {"value": float(means[top]), "confidence": 1.0, "model": self.model_info.name,
                            "means": {c: float(m) for c, m in zip(classes, means)}},
                "label": {"label": classes[top] if top < len(classes) else str(top), "confidence": float(means[top])}}


class Model(ZooModel):
    """An Essentia zoo model (embedding extractor or classification head) by name."""

    name = "essentia_gpu.model"
    version = "1"
    sample_rate = 16000
    params = {"model": mirflow.Param("discogs-effnet-bs64-1", str,
                                     help=f"zoo model name (known: {', '.join(sorted(k for k in CATALOGUE if k != TEMPOCNN))})"),
              "models_dir": MODELS_DIR}

    @classmethod
    def check_params(cls, values):
        if values["model"] == TEMPOCNN or values["model"].startswith("deeptemp"):
            raise mirflow.ParamError("TempoCNN runs at 11025 Hz: use essentia_gpu.tempocnn")


class TempoCNN(ZooModel):
    """Tempo from TempoCNN (256 BPM classes, 30-285): per-patch probabilities, the track's tempo."""

    name = "essentia_gpu.tempocnn"
    version = "1"
    sample_rate = 11025
    params = {"model": mirflow.Param(TEMPOCNN, str, help="TempoCNN model name"), "models_dir": MODELS_DIR}
    outputs = {**ZooModel.outputs, "tempo": mirflow.SCALAR}

    def summarize(self, times, values):
        summary = super().summarize(times, values)
        if len(values):
            probabilities = values.reshape(len(values), -1).mean(axis=0)
            best = int(np.argmax(probabilities))
            summary["tempo"] = {"value": float(30 + best), "confidence": float(probabilities[best])}
        else:
            summary["tempo"] = {"value": None, "confidence": 0.0}
        return summary


def describe_models() -> list[tuple[str, str, str]]:
    """(name, installed?, path or how to get it) for every known and installed model."""
    directory = models_dir()
    rows = []
    for name in sorted(set(CATALOGUE) | set(_installed(directory))):
        info = None
        try:
            info = find(name, directory)
        except ModelError as error:
            rows.append((name, "broken", str(error)))
            continue
        rows.append((name, "installed" if info else "-", str(info.graph) if info else f"mirflow models pull {name}"
                     if name in CATALOGUE else ""))
    return rows


def _installed(directory):
    from .zoo import installed

    return installed(directory)
