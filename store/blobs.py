"""Claim-check store: large audio is written once under its sha256 and events carry the name."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from callsense.core.claims import BLOB_NAME, AudioRef
from callsense.core.errors import BadInput

# A temp file older than this belongs to a writer that died before its rename.
TEMP_MAX_AGE_S = 3600.0
# A blob that no call names (an utterance window, a recording whose call is not stored
# yet) may still be named by an event in flight: it is only collected after this long.
UNREFERENCED_GRACE_S = 24 * 3600.0
# A withdrawn blob leaves `<name>.withdrawn` (the calls it was withdrawn for, one a line), so
# a redelivered event naming it is known for a duplicate; kept longer than Kafka keeps events.
WITHDRAWN_SUFFIX = ".withdrawn"
WITHDRAWN_MAX_AGE_S = 30 * 24 * 3600.0


class BlobWithdrawn(FileNotFoundError):
    """The blob was deleted on purpose (clear audio of a call whose PII was silenced)."""

    def __init__(self, name: str, calls: frozenset[str]):
        super().__init__(f"audio blob {name} was withdrawn after the recording of call(s) "
                         f"{', '.join(sorted(calls)) or '?'} was redacted")
        self.name = name
        self.calls = calls


@dataclass(frozen=True)
class BlobUse:
    """A call that names a blob: enough for the collector to decide whether it must stay."""

    blob: str
    status: str  # processing | done | failed | clear (audio in clear of a call whose recording was redacted)
    started_at: float = 0.0
    finished_at: float | None = None


@dataclass
class GcReport:
    removed: list[tuple[str, int, str]] = field(default_factory=list)  # (name, bytes, why)
    kept: int = 0

    @property
    def bytes_freed(self) -> int:
        return sum(n for _, n, _ in self.removed)


class BlobStore:
    def __init__(self, root: Path, inline_max_bytes: int):
        self.root = Path(root)
        self.inline_max_bytes = inline_max_bytes

    def _path(self, name: str) -> Path:
        # Only sha256 names, and only inside root: a name from a message is never a path.
        if not isinstance(name, str) or not BLOB_NAME.fullmatch(name):
            raise BadInput(f"invalid blob name {str(name)[:80]!r}: a blob is named by the sha256 of its content (64 hex digits)")
        return self.root / name[:2] / name

    def put(self, data: bytes, keep: bool = False) -> AudioRef:
        """Inline when small (unless `keep`: the bytes must outlive the event, e.g. a call's
        recording that the dashboard plays); otherwise store idempotently, return a reference."""
        if len(data) <= self.inline_max_bytes and not keep:
            return AudioRef(inline=data, n_bytes=len(data))
        name = hashlib.sha256(data).hexdigest()
        path = self._path(name)
        if path.exists():
            try:
                os.utime(path)  # fresh again: the collector's grace period starts over
            except OSError:
                pass
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            # fsync before rename: the event naming this blob may be committed right after.
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            tmp.replace(path)
        return AudioRef(blob=name, n_bytes=len(data))

    def get(self, ref: AudioRef) -> bytes:
        if ref.inline is not None:
            return ref.inline
        if ref.blob is None:
            return b""
        path = self._path(ref.blob)
        if not path.exists():
            calls = self.withdrawn_calls(ref.blob)
            if calls is not None:
                raise BlobWithdrawn(ref.blob, calls)
            raise FileNotFoundError(f"audio blob {ref.blob} is missing from {self.root} (is CALLSENSE_BLOB_DIR shared by all workers?)")
        return path.read_bytes()

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def modified_at(self, name: str) -> float | None:
        """When the blob was last written or put again (`put` refreshes it); None when missing."""
        try:
            return self._path(name).stat().st_mtime
        except FileNotFoundError:
            return None

    def withdraw(self, name: str, call_id: str) -> bool:
        """Delete a blob on purpose for `call_id` (its clear audio, once the call's recording is
        redacted). The call is first recorded in `<name>.withdrawn` (fsynced), so an event of that
        call redelivered later is recognised (`withdrawn_for`) instead of failing on a missing
        blob. Safe to repeat. Returns whether a file was deleted."""
        path = self._path(name)
        if call_id not in (self.withdrawn_calls(name) or ()):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_name(name + WITHDRAWN_SUFFIX), "a", encoding="utf-8") as fh:
                fh.write(call_id.replace("\n", " ") + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def withdrawn_calls(self, name: str) -> frozenset[str] | None:
        """The calls a blob was withdrawn for; None when it never was."""
        try:
            text = self._path(name).with_name(name + WITHDRAWN_SUFFIX).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return frozenset(line for line in text.splitlines() if line)

    def withdrawn_for(self, name: str, call_id: str) -> bool:
        """The blob is gone because it was withdrawn for this call (an event naming it is a
        redelivery of work already stored)."""
        if self._path(name).exists():
            return False
        return call_id in (self.withdrawn_calls(name) or ())

    def gc(self, uses: Iterable[BlobUse], retention_s: float | None, *, now: float | None = None,
           dry_run: bool = False) -> GcReport:
        """Remove what nothing needs any more:
        - blobs named only by failed calls, or only by calls that ended more than `retention_s` ago
          (None or 0: recordings of finished calls are kept forever);
        - blobs no call names, once older than UNREFERENCED_GRACE_S (events in flight may name them);
        - blobs that hold a call's audio in clear after its recording was redacted (status `clear`;
          the store stage withdraws them itself; these are what a crash left);
        - temp files older than TEMP_MAX_AGE_S, withdrawal marks older than WITHDRAWN_MAX_AGE_S.
        A blob named by a call still processing, or by one within retention, always stays."""
        now = time.time() if now is None else now
        keep: set[str] = set()
        expired: dict[str, str] = {}
        for u in uses:
            if not u.blob:
                continue
            if u.status == "failed":
                expired.setdefault(u.blob, "failed input")
                continue
            if u.status == "clear":
                expired.setdefault(u.blob, "clear audio of a redacted call")
                continue
            if u.status == "done" and retention_s:
                ended = u.finished_at or u.started_at
                if ended and now - ended > retention_s:
                    expired.setdefault(u.blob, f"call older than {retention_s / 86400:g} days")
                    continue
            keep.add(u.blob)
        report = GcReport()
        if not self.root.is_dir():
            return report
        for sub in sorted(self.root.iterdir()):
            if not sub.is_dir() or sub.is_symlink() or len(sub.name) != 2:
                continue
            for path in sorted(sub.iterdir()):
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue
                name = path.name
                why = None
                if BLOB_NAME.fullmatch(name) and name[:2] == sub.name:
                    if name in keep:
                        report.kept += 1
                        continue
                    if name in expired:
                        why = expired[name]
                    elif now - st.st_mtime > UNREFERENCED_GRACE_S:
                        why = "referenced by no call"
                elif BLOB_NAME.fullmatch(name.split(".", 1)[0]) and ".tmp" in name and now - st.st_mtime > TEMP_MAX_AGE_S:
                    why = "stale temp file"
                elif (name.endswith(WITHDRAWN_SUFFIX) and BLOB_NAME.fullmatch(name[:-len(WITHDRAWN_SUFFIX)])
                      and now - st.st_mtime > WITHDRAWN_MAX_AGE_S):
                    why = "old withdrawal mark"
                if why is None:
                    report.kept += 1
                    continue
                if not dry_run:
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        continue
                report.removed.append((name, st.st_size, why))
        return report
