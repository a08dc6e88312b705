"""PII redaction cost vs the sentiment model's, per sentence, in one run (issue 15: the
pipeline's overhead bar is <= 10 % CPU per call), plus recall / precision on the generated set.

    python bench/bench_pii.py [--sentences 2000]
"""

from __future__ import annotations

import argparse
import time

from callsense.core.settings import Settings
from callsense.nlp.pii import PiiRedactor
from callsense.nlp.pii.corpus import clean_sentences, pii_cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=2000)
    args = ap.parse_args()
    cases = pii_cases()
    pii_texts = [c.text for c in cases]
    # A call is mostly PII-free: mix one PII sentence per ten clean ones, as a support call has.
    clean = clean_sentences()
    mixed = [pii_texts[i // 10 % len(pii_texts)] if i % 10 == 0 else clean[i % len(clean)] for i in range(args.sentences)]
    redactor = PiiRedactor("mask")

    def per_sentence(texts, fn, repeat=3):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            for t in texts:
                fn(t)
            best = min(best, (time.process_time() - t0) / len(texts))
        return best

    red_mixed = per_sentence(mixed, redactor.redact)
    red_pii = per_sentence(pii_texts, redactor.redact)
    from callsense.nlp.sentiment.base import create_sentiment_model  # the embedded model

    model = create_sentiment_model(Settings())
    sample = mixed[:300]
    model.score(sample[:8])  # warm up
    sent = per_sentence([sample[i:i + 16] for i in range(0, len(sample), 16)], model.score, repeat=2) / 16

    found = {id(c): redactor.find(c.text) for c in cases}
    inst = [(c, p) for c in cases for p in c.pii]
    hit = sum(all(any(a <= i < b for _, a, b in found[id(c)]) for i in range(p[1], p[2]) if c.text[i].isalnum())
              for c, p in inst)
    pred = sum(len(v) for v in found.values()) + sum(len(redactor.find(t)) for t in clean)
    fp = sum(1 for c in cases for s in found[id(c)] if not any(s[1] < p[2] and s[2] > p[1] for p in c.pii)) \
        + sum(len(redactor.find(t)) for t in clean)
    print(f"generated set: {len(inst)} PII instances in {len(cases)} sentences + {len(clean)} PII-free sentences")
    print(f"recall {hit / len(inst):.4f}  precision {1 - fp / pred:.4f}")
    print(f"redactor: {red_mixed * 1e6:.1f} us/sentence on a call-like mix ({1 / red_mixed:,.0f} sentences/s), "
          f"{red_pii * 1e6:.1f} us on PII sentences")
    print(f"sentiment ({type(model).__name__}): {sent * 1e6:.0f} us/sentence (batches of 16)")
    print(f"redaction overhead vs sentiment: {100 * red_mixed / sent:.2f} % (PII sentences only: {100 * red_pii / sent:.2f} %)")


if __name__ == "__main__":
    main()
