"""Errors a stage raises. `BadInput` dead-letters the event; `TransientError` is retried."""


class BadInput(ValueError):
    """The event can never be processed (corrupt audio, unsupported codec, ...)."""


class TransientError(RuntimeError):
    """A dependency is down or slow; the same event may succeed later."""


class OutageGaveUp(RuntimeError):
    """A dependency (Kafka broker, database, ...) stayed unavailable longer than the
    configured give-up time. The message is one line: what was down, for how long, why, and
    what was not done (sent / stored) because of it."""

    def __init__(self, what: str, down_s: float, reason: str, unsent: str = ""):
        self.what, self.down_s, self.reason, self.unsent = what, down_s, reason, unsent
        msg = f"gave up: {what} unreachable for {down_s:.0f} s ({reason})"
        super().__init__(f"{msg}; {unsent}" if unsent else msg)
