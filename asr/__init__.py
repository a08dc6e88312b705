"""Speech recognition: the engine interface, its registry and the engines."""
