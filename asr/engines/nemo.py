"""NVIDIA NeMo engine: a local `.nemo` ASR checkpoint (CTC, RNN-T, TDT, AED ...) restored
with `ASRModel.restore_from` and run in batches (`pip install callsense[nemo]`: torch and
nemo_toolkit[asr]; CPU works, CALLSENSE_NEMO_DEVICE=cuda uses a GPU).

`CALLSENSE_NEMO_MODEL_PATH` names the file; nothing is downloaded. Load problems (no path,
not a .nemo archive, a corrupt or incompatible checkpoint, NeMo not installed) raise
`AsrUnavailable` with one line naming the file.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from callsense.asr.base import AsrEngine, AsrUnavailable, RecognizedSegment, RecognizedWord, asr_engines
from callsense.core.settings import Settings

log = logging.getLogger("callsense.nemo")
RATE = 16000
NEMO_EXTRA_HINT = "pip install callsense[nemo]  (nemo_toolkit[asr]==3.0.0 and torch)"


def _nemo_asr():
    try:
        import torch  # noqa: F401
        from nemo.collections.asr.models import ASRModel
    except ImportError as e:
        raise AsrUnavailable(f"the NeMo engine needs NeMo and torch ({e.name or e} is missing): {NEMO_EXTRA_HINT}") from None
    return ASRModel


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def checked_checkpoint(path: Path | None) -> Path:
    if path is None:
        raise AsrUnavailable("the NeMo engine needs a model: set CALLSENSE_NEMO_MODEL_PATH to a local .nemo checkpoint")
    path = Path(path).expanduser()
    if not path.is_file():
        raise AsrUnavailable(f"no NeMo checkpoint at {path} (CALLSENSE_NEMO_MODEL_PATH)")
    try:
        with tarfile.open(path) as tar:
            names = tar.getnames()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise AsrUnavailable(f"{path} is not a readable .nemo checkpoint (a .nemo file is a tar archive: {_first_line(e)})") from None
    if not any(n.endswith("model_config.yaml") for n in names):
        raise AsrUnavailable(f"{path} is not a .nemo checkpoint: it has no model_config.yaml")
    return path


@asr_engines.register("nemo")
class NemoEngine(AsrEngine):
    name = "nemo"

    def __init__(self, settings: Settings):
        path = checked_checkpoint(settings.asr.nemo_model_path)
        ASRModel = _nemo_asr()
        import torch

        torch.set_num_threads(settings.cpu_threads)
        try:
            model = ASRModel.restore_from(str(path), map_location=torch.device(settings.asr.nemo_device))
        except Exception as e:  # NeMo raises anything from tar, yaml, hydra and torch here
            raise AsrUnavailable(f"cannot load the NeMo model {path}: {_first_line(e)}") from None
        model.eval()
        self._model = model
        self._batch_size = settings.asr.nemo_batch_size
        self._rate = int(getattr(model.cfg, "sample_rate", None) or RATE)
        self._model_id = f"nemo:{path.stem}@{_file_digest(path)[:12]}"
        self._timestamps = True

    @property
    def model_id(self) -> str:
        return self._model_id

    def transcribe(self, audio: np.ndarray) -> Iterator[RecognizedSegment]:
        yield from self.transcribe_batch([audio])[0]

    def transcribe_batch(self, clips: Sequence[np.ndarray]) -> list[list[RecognizedSegment]]:
        """Several 16 kHz clips in batches of `nemo_batch_size`; one segment list per clip."""
        import torch

        from callsense.audio.resample import resample

        audio = [np.asarray(c, dtype=np.float32) for c in clips]
        if self._rate != RATE:
            audio = [resample(a, RATE, self._rate) for a in audio]
        keep = [i for i, a in enumerate(audio) if a.size]
        out: list[list[RecognizedSegment]] = [[] for _ in audio]
        if not keep:
            return out
        with torch.inference_mode():
            hyps = self._run([audio[i] for i in keep])
        for i, hyp in zip(keep, hyps):
            out[i] = self._segments(hyp, audio[i].size / self._rate)
        return out

    def _run(self, audio: list[np.ndarray]) -> list:
        if self._timestamps:
            try:
                return self._unpack(self._model.transcribe(audio, batch_size=self._batch_size, return_hypotheses=True,
                                                           timestamps=True, verbose=False))
            except (TypeError, ValueError, NotImplementedError, RuntimeError, KeyError) as e:
                log.info("NeMo model %s gives no word times (%s): words are spread over each clip", self._model_id, _first_line(e))
                self._timestamps = False
        return self._unpack(self._model.transcribe(audio, batch_size=self._batch_size, return_hypotheses=True, verbose=False))

    @staticmethod
    def _unpack(result) -> list:
        # RNN-T models return (best hypotheses, all hypotheses).
        if isinstance(result, tuple):
            result = result[0]
        return list(result)

    def _segments(self, hyp, duration: float) -> list[RecognizedSegment]:
        text = (hyp if isinstance(hyp, str) else getattr(hyp, "text", "")) or ""
        text = text.strip()
        if not text:
            return []
        stamps = getattr(hyp, "timestamp", None)
        words: list[RecognizedWord] = []
        if isinstance(stamps, dict) and stamps.get("word"):
            for w in stamps["word"]:
                start, end = float(w.get("start", 0.0)), float(w.get("end", 0.0))
                words.append(RecognizedWord(str(w.get("word", "")), start, max(end, start)))
        else:
            # No times from the model: spread the words evenly so the pipeline can still place them.
            tokens = text.split()
            step = duration / max(len(tokens), 1)
            words = [RecognizedWord(t, i * step, (i + 1) * step) for i, t in enumerate(tokens)]
        # Hypothesis.score is a summed log-probability, not a confidence: none is reported.
        return [RecognizedSegment(text=text, start=words[0].start if words else 0.0, end=words[-1].end if words else duration,
                                  words=words)]
