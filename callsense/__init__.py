"""callsense: speech analytics for support centers."""

__version__ = "0.1.0"
