"""Where the spoken-sentiment gap comes from: one sentiment model on the matched turns of an
`eval pipeline` report on calls, fed the reference text as it is, without "!", without any
punctuation, the stored sentences joined per turn, and (as stored) each sentence scored alone.

    python bench/bench_sentiment_gap.py REPORT_DIR [--model-dir DIR]

REPORT_DIR is the report folder of `callsense eval pipeline CALLS --report REPORT_DIR`
(its result.json has every turn's reference text, stored text and stored label).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from _common import REPO

NO_PUNCTUATION = re.compile(r"[^\w\s']")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--model-dir", type=Path, default=REPO / "nlp" / "sentiment" / "models" / "minilm-meld-int8")
    args = ap.parse_args()
    from sklearn.metrics import f1_score

    from callsense.core.settings import Settings
    from callsense.nlp.sentiment.onnx_model import OnnxSentimentModel

    model = OnnxSentimentModel(Settings(sentiment_backend="onnx", sentiment_model_dir=str(args.model_dir)))
    result = json.loads((args.report / "result.json").read_text(encoding="utf-8"))
    rows = [t for t in result["turn_rows"] if t.get("stored_sentiment") and t["label"] in ("negative", "neutral", "positive")]
    gold = [t["label"] for t in rows]

    def f1(pred) -> float:
        return f1_score(gold, pred, average="macro")

    def score(texts) -> list[str]:
        return [s.label for s in model.score(texts)]

    print(f"{len(rows)} matched turns of {args.report}; model {model.model_id}")
    print(f"reference text                      {f1(score([t['reference'] for t in rows])):.3f}")
    print(f'reference text, every "!" as "."     {f1(score([t["reference"].replace("!", ".") for t in rows])):.3f}')
    bare = [NO_PUNCTUATION.sub(" ", t["reference"]) for t in rows]
    print(f"reference text without punctuation  {f1(score(bare)):.3f}")
    print(f"stored sentences joined per turn    {f1(score([t['stored'] for t in rows])):.3f}")
    print(f"stored labels (the pipeline)        {f1([t['stored_sentiment'] for t in rows]):.3f}")


if __name__ == "__main__":
    main()
