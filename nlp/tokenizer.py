"""The shipped models' tokenizers, read from their tokenizer.json by the `tokenizers`
library: what transformers' fast tokenizers run underneath, without importing
transformers (126 MB, seconds to import) on the embedded path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class Batch:
    input_ids: np.ndarray  # (batch, length) int64
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    word_ids: list[list[int | None]]  # per row, the word each token came from (pre-split input)

    def feed(self, names: set[str]) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("input_ids", "attention_mask", "token_type_ids") if k in names}


class WordPieceTokenizer:
    """tokenizer.json + the pad token of tokenizer_config.json, padded to the longest row."""

    def __init__(self, folder: Path, max_length: int, error: type[Exception] = RuntimeError):
        from tokenizers import Tokenizer

        path = Path(folder) / "tokenizer.json"
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - any failure here means the folder is unusable
            raise error(f"{path}: cannot load the tokenizer ({e})") from None
        pad = "[PAD]"
        config = Path(folder) / "tokenizer_config.json"
        if config.is_file():
            pad = json.loads(config.read_text()).get("pad_token") or pad
        pad_id = self._tok.token_to_id(pad)
        self._tok.enable_truncation(max_length=max_length)
        self._tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad)

    def encode(self, texts: Sequence[str] | Sequence[list[str]], *, pretokenized: bool = False) -> Batch:
        encs = self._tok.encode_batch(list(texts), is_pretokenized=pretokenized)
        return Batch(
            input_ids=np.array([e.ids for e in encs], dtype=np.int64),
            attention_mask=np.array([e.attention_mask for e in encs], dtype=np.int64),
            token_type_ids=np.array([e.type_ids for e in encs], dtype=np.int64),
            word_ids=[list(e.word_ids) for e in encs],
        )
