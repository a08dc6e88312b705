"""Text to speech: the engine interface, its registry and the engines (espeak-ng embedded, Riva)."""
