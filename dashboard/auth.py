"""Who may sign in: bcrypt-hashed users from the database (`callsense dashboard add-user`)
and from an optional YAML file (for users managed as configuration).

The YAML file (settings.dashboard.users_file, CALLSENSE_DASHBOARD_USERS_FILE, default DATA_DIR/dashboard-users.yaml)::

    users:
      maria:
        name: Maria Lopez
        password: "$2b$12$..."      # a bcrypt hash: `callsense dashboard hash-password`
        roles: [manager, reviewer]
      ag-7:
        password: "$2b$12$..."
        roles: [agent]
        agent_id: ag-7             # the agent id calls carry (default: the user name)

streamlit-authenticator's layout (``credentials: usernames: ...``, with ``roles``) is read
too. A user in both places: the database entry wins.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import bcrypt
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from callsense.core.settings import Settings
from callsense.dashboard.data import User
from callsense.store.review import ROLES, DashboardUser

# Compared against when the user name is unknown, so timing does not tell which names exist.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=12))
MAX_PASSWORD_BYTES = 72  # bcrypt's limit


class UsersFileError(ValueError):
    pass


def users_file(settings: Settings) -> Path:
    return settings.dashboard.users_file or settings.data_dir / "dashboard-users.yaml"


def hash_password(password: str) -> str:
    data = password.encode()
    if not password:
        raise ValueError("the password is empty")
    if len(data) > MAX_PASSWORD_BYTES:
        raise ValueError(f"passwords are at most {MAX_PASSWORD_BYTES} bytes (bcrypt)")
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds=12)).decode()


def check_password(password: str, hashed: str) -> bool:
    data = password.encode()
    if len(data) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(data, hashed.encode())
    except ValueError:
        return False


def parse_roles(roles, where: str) -> frozenset[str]:
    if isinstance(roles, str):
        roles = [r.strip() for r in roles.split(",") if r.strip()]
    roles = [str(r).strip().lower() for r in roles or []]
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise UsersFileError(f"{where}: unknown role '{bad[0]}' (roles are: {', '.join(ROLES)})")
    if not roles:
        raise UsersFileError(f"{where}: no roles (give one or more of: {', '.join(ROLES)})")
    return frozenset(roles)


def _is_bcrypt(value: str) -> bool:
    return isinstance(value, str) and value.startswith(("$2a$", "$2b$", "$2y$")) and len(value) == 60


def load_users_file(path: Path) -> dict[str, tuple[User, str]]:
    """username -> (user, bcrypt hash). A missing file is no users; a bad one raises
    UsersFileError naming the file, the user and the fix."""
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UsersFileError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise UsersFileError(f"{path}: expected a mapping with a 'users' key")
    entries = doc.get("users")
    if entries is None and isinstance(doc.get("credentials"), dict):
        entries = doc["credentials"].get("usernames")  # streamlit-authenticator's layout
    if entries is None:
        raise UsersFileError(f"{path}: no 'users' mapping")
    if not isinstance(entries, dict):
        raise UsersFileError(f"{path}: 'users' must map user names to their settings")
    out: dict[str, tuple[User, str]] = {}
    for username, entry in entries.items():
        where = f"{path}: user '{username}'"
        if not isinstance(entry, dict):
            raise UsersFileError(f"{where}: expected name, password, roles")
        hashed = entry.get("password", "")
        if not _is_bcrypt(hashed):
            raise UsersFileError(f"{where}: password must be a bcrypt hash, not plain text "
                                 f"(make one with `callsense dashboard hash-password`)")
        roles = parse_roles(entry.get("roles"), where)
        agent_id = entry.get("agent_id") or (str(username) if "agent" in roles else None)
        out[str(username)] = (User(username=str(username), roles=roles, name=str(entry.get("name") or ""),
                                   agent_id=agent_id), hashed)
    return out


class SignInLimiter:
    """Failed sign-ins per user name and per client address in a sliding window: past the
    limit, that user (or address) is locked out until the oldest failure leaves the window.
    One per dashboard process (the app keeps it as a cached resource); bcrypt's cost already
    slows guessing, this stops it."""

    def __init__(self, *, per_user: int = 5, per_address: int = 20, window_s: float = 900.0, clock=time.monotonic):
        self.per_user, self.per_address, self.window_s, self._clock = per_user, per_address, window_s, clock
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, username: str, address: str | None) -> list[tuple[tuple[str, str], int]]:
        keys = [(("user", username.strip().lower()), self.per_user)]
        if address:  # unknown addresses are not one shared address
            keys.append((("addr", address), self.per_address))
        return keys

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def locked_for(self, username: str, address: str | None) -> float:
        """Seconds until a sign-in may be tried again (0: now)."""
        now = self._clock()
        waits = []
        with self._lock:
            for key, limit in self._keys(username, address):
                times = self._recent(key, now)
                if len(times) >= limit:
                    waits.append(times[-limit] + self.window_s - now)
        return max(waits, default=0.0)

    def failed(self, username: str, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key, _ in self._keys(username, address):
                self._failures.setdefault(key, []).append(now)
                if len(self._failures) > 100_000:  # bounded: forget the stalest keys first
                    for stale in sorted(self._failures, key=lambda k: self._failures[k][-1])[:50_000]:
                        del self._failures[stale]

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(("user", username.strip().lower()), None)


class UserDirectory:
    """The users who may sign in, from the database and the YAML file."""

    def __init__(self, engine: Engine, file: Path | None = None):
        self.engine = engine
        self.file = file

    def _db_user(self, username: str) -> tuple[User, str] | None:
        with Session(self.engine) as s:
            row = s.get(DashboardUser, username)
        if row is None or row.disabled:
            return None
        roles = frozenset(r for r in row.roles.split(",") if r)
        return User(username=row.username, roles=roles, name=row.name, agent_id=row.agent_id), row.password_hash

    def _lookup(self, username: str) -> tuple[User, str] | None:
        found = self._db_user(username)
        if found is None and self.file is not None:
            found = load_users_file(self.file).get(username)
        return found

    def authenticate(self, username: str, password: str) -> User | None:
        found = self._lookup(username.strip())
        if found is None:
            check_password(password, _DUMMY_HASH.decode())
            return None
        user, hashed = found
        return user if check_password(password, hashed) else None

    def has_users(self) -> bool:
        with Session(self.engine) as s:
            if s.exec(select(DashboardUser).where(DashboardUser.disabled == False).limit(1)).first():  # noqa: E712
                return True
        return bool(self.file and load_users_file(self.file))

    def list_users(self) -> list[tuple[User, str]]:
        """(user, where it is defined) for every user."""
        out: dict[str, tuple[User, str]] = {}
        if self.file is not None:
            for name, (user, _) in load_users_file(self.file).items():
                out[name] = (user, str(self.file))
        with Session(self.engine) as s:
            for row in s.exec(select(DashboardUser)).all():
                roles = frozenset(r for r in row.roles.split(",") if r)
                out[row.username] = (User(row.username, roles, row.name, row.agent_id),
                                     "database (disabled)" if row.disabled else "database")
        return [out[k] for k in sorted(out)]

    def add_user(self, username: str, password: str, roles, *, name: str = "", agent_id: str | None = None,
                 replace: bool = False) -> User:
        username = username.strip()
        if not username:
            raise ValueError("the user name is empty")
        role_set = parse_roles(roles, f"user '{username}'")
        if "agent" in role_set and not agent_id:
            agent_id = username
        row = DashboardUser(username=username, name=name, password_hash=hash_password(password),
                            roles=",".join(sorted(role_set)), agent_id=agent_id, created_at=time.time())
        with Session(self.engine) as s:
            existing = s.get(DashboardUser, username)
            if existing is not None and not replace:
                raise ValueError(f"user '{username}' exists (use --replace to change it)")
            if existing is not None:
                s.delete(existing)
                s.flush()
            s.add(row)
            s.commit()
        return User(username=username, roles=role_set, name=name, agent_id=agent_id)

    def remove_user(self, username: str) -> bool:
        with Session(self.engine) as s:
            row = s.get(DashboardUser, username)
            if row is None:
                return False
            s.delete(row)
            s.commit()
            return True
