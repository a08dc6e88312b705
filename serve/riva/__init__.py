"""`callsense riva-serve`: the Riva gRPC API (ASR, TTS, NLP, health) backed by the embedded engines."""
