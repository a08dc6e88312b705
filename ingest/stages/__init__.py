"""The pipeline's stages, one module each, in data-flow order: segment, transcribe (or
live-transcribe), sentiment, store. They turn events into calls on the libraries (audio,
asr, nlp, store), which know nothing of events."""
