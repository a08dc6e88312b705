"""Fine-tuning jobs: `sentiment` and `intent-slot` (transformers) and `asr` (NeMo), on one
template (`base.py`: a pydantic config model per job, the run record, failure handling).
The transformers jobs' networks are in `models.py`, their training loop in `trainer.py` and
the int8 ONNX export in `export.py`; the shipped int8 models are built by these jobs. Each
job writes a run record and its artifacts, shows progress, resumes from its last checkpoint
and uses a GPU when one is present. torch (the `train` extra) and NeMo (the `nemo` extra)
are imported only when a job runs."""
