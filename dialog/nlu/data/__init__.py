"""NLU training data: the NeMo intent/slot files, their generator and readers."""
