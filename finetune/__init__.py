"""Fine-tuning and evaluation jobs."""
