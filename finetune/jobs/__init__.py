"""Fine-tuning jobs: `sentiment` and `intent-slot` (transformers) and `asr` (NeMo). Each
writes a run record and its artifacts, shows progress, resumes from its last checkpoint and
uses a GPU when one is present. torch (the `train` extra) and NeMo (the `nemo` extra) are
imported only when a job runs."""
