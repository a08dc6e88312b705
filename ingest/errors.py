"""Errors a stage raises. `BadInput` dead-letters the event; `TransientError` is retried."""


class BadInput(ValueError):
    """The event can never be processed (corrupt audio, unsupported codec, ...)."""


class TransientError(RuntimeError):
    """A dependency is down or slow; the same event may succeed later."""
