"""Optional login for the chat: a file of `user:pbkdf2_sha256$iterations$salt$hash[:role]` lines (no plain
passwords).

The hash is base64(PBKDF2-HMAC-SHA256(password, salt, iterations, 32 bytes)) and the salt is an ASCII string
used as its UTF-8 bytes, the same layout as Django's PBKDF2PasswordHasher. Blank lines and `#` comments are
ignored.

The role is an optional third `:` field, `user` or `admin` (admin: sees the ナレッジ管理 / Knowledge admin tab and
may call its handlers). A line without it, as every file written before roles, is role `user`, so old files keep
working unchanged. `:` cannot occur in the name, the salt or base64, so the third field is unambiguous. Any other
role is refused with the file and line (AuthFileError), never read as `user`: a typo in `admin` must be seen.

    alice:pbkdf2_sha256$600000$9f…$Xr…=           # role user
    sato:pbkdf2_sha256$600000$1c…$Qm…=:admin      # role admin

Create a line with:

    python -m bpo_assistant.ui.auth USER [--role admin]    # asks for the password twice
    python -m bpo_assistant.ui.auth USER --role admin >> users.txt

and point BPO_AUTH_FILE at the file.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000  # OWASP 2023 guidance for PBKDF2-HMAC-SHA256
# What a served login accepts (settings.auth_min_iterations): an entry hashed with fewer rounds is flagged and
# cannot log in, since a stolen file of 10,000-round hashes is cracked 60x faster. parse_accounts refuses only
# lines below FLOOR_ITERATIONS (never a real hash), so old files can still be read and their entries named.
MIN_ITERATIONS = DEFAULT_ITERATIONS
FLOOR_ITERATIONS = 10_000
MAX_ITERATIONS = 10_000_000  # a hostile file must not make each login take minutes
USER, ADMIN = "user", "admin"
ROLES = (USER, ADMIN)


log = logging.getLogger(__name__)


class AuthFileError(ValueError):
    pass


def _derive(password: str, salt: str, iterations: int) -> str:
    dk = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), iterations, dklen=32)
    return base64.b64encode(dk).decode("ascii")


def hash_password(password: str, salt: str | None = None, iterations: int = DEFAULT_ITERATIONS) -> str:
    if not password:
        raise ValueError("empty password")
    salt = salt or secrets.token_hex(16)
    if "$" in salt or ":" in salt:
        raise ValueError("salt must not contain '$' or ':'")
    return f"{ALGORITHM}${iterations}${salt}${_derive(password, salt, iterations)}"


@dataclass(frozen=True)
class Account:
    user: str
    encoded: str  # pbkdf2_sha256$iterations$salt$hash
    role: str = USER


def make_line(user: str, password: str, iterations: int = DEFAULT_ITERATIONS, role: str = USER) -> str:
    """One line for the auth file; role `user` writes no role field (the line an old reader also accepts)."""
    if not user or ":" in user or any(ch.isspace() for ch in user):
        raise ValueError("user name must be non-empty, without ':' or spaces")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    line = f"{user}:{hash_password(password, iterations=iterations)}"
    return line if role == USER else f"{line}:{role}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        algorithm, iterations_s, salt, expected = encoded.split("$", 3)
        iterations = int(iterations_s)
    except ValueError:
        return False
    if algorithm != ALGORITHM or not (1 <= iterations <= MAX_ITERATIONS) or not salt:
        return False
    actual = _derive(password or "", salt, iterations)
    return hmac.compare_digest(actual.encode("ascii"), expected.encode("ascii", "replace"))


def parse_accounts(path: Path | str) -> dict[str, Account]:
    """user -> Account. Raises AuthFileError (naming file and line) on a malformed line, an unknown role or a file
    without users."""
    accounts: dict[str, Account] = {}
    text = Path(path).read_text(encoding="utf-8")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, rest = line.partition(":")
        encoded, has_role, role = rest.partition(":")
        parts = encoded.split("$")
        if not sep or not user or len(parts) != 4 or parts[0] != ALGORITHM or not parts[1].isdigit():
            raise AuthFileError(f"{path}:{lineno}: expected user:{ALGORITHM}$iterations$salt$hash[:role]")
        if not FLOOR_ITERATIONS <= int(parts[1]) <= MAX_ITERATIONS:
            raise AuthFileError(f"{path}:{lineno}: iterations must be between {FLOOR_ITERATIONS} and {MAX_ITERATIONS}")
        if has_role and role not in ROLES:
            raise AuthFileError(f"{path}:{lineno}: unknown role {role!r} for {user!r}: expected one of "
                                f"{', '.join(ROLES)} (or no role field for {USER})")
        accounts[user] = Account(user, encoded, role if has_role else USER)
    if not accounts:
        raise AuthFileError(f"{path}: no users")
    return accounts


def parse_auth_file(path: Path | str) -> dict[str, str]:
    """user -> encoded hash, for make_verifier. Raises AuthFileError as parse_accounts does."""
    return {user: a.encoded for user, a in parse_accounts(path).items()}


_roles_cache: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}
_roles_lock = threading.Lock()


def role_of(path: Path | str, user: str | None) -> str | None:
    """The user's role in the auth file as it is now (re-read when its mtime or size changes, so taking a role
    away needs no restart); None for an unknown user. A file that cannot be read or parsed grants no role: the
    admin check fails closed, and the reason is logged once per change of the file."""
    if not user:
        return None
    key = str(path)
    try:
        st = os.stat(key)
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError as exc:
        log.warning("auth file %s unreadable, no roles granted: %s", key, exc)
        return None
    with _roles_lock:
        cached = _roles_cache.get(key)
        if cached is None or cached[0] != stamp:
            try:
                roles = {u: a.role for u, a in parse_accounts(key).items()}
            except (OSError, AuthFileError) as exc:
                log.warning("auth file unusable, no roles granted: %s", exc)
                roles = {}
            _roles_cache[key] = cached = (stamp, roles)
    return cached[1].get(user)


def make_verifier(users: dict[str, str]) -> Callable[[str, str], bool]:
    """A Gradio `auth=` callable. Unknown users cost the same PBKDF2 work as known ones."""
    dummy = hash_password(secrets.token_hex(8), iterations=1)
    dummy_iters = max((int(e.split("$")[1]) for e in users.values()), default=MIN_ITERATIONS)
    dummy = f"{ALGORITHM}${dummy_iters}${dummy.split('$')[2]}${dummy.split('$')[3]}"

    def verify(username: str, password: str) -> bool:
        encoded = users.get(username or "")
        ok = verify_password(password or "", encoded or dummy)
        return bool(encoded) and ok

    return verify


def make_async_verifier(users: dict[str, str] | Callable[[str, str], bool], parallel: int = 2):
    """The verifier (of a user -> hash dict, or a callable such as AuthFile) as a coroutine for Gradio's login
    route: PBKDF2 runs in a worker thread (hashlib releases the GIL), so a login never stalls the server's event
    loop, and at most `parallel` checks run at once."""
    verify = users if callable(users) else make_verifier(users)
    gate: asyncio.Semaphore | None = None

    async def verify_async(username: str, password: str) -> bool:
        nonlocal gate
        if gate is None:
            gate = asyncio.Semaphore(parallel)
        async with gate:
            return await asyncio.to_thread(verify, username, password)

    return verify_async


@dataclass
class _Strikes:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Backoff after failed logins, per user name and per client address: after `max_failures` failures the key
    is locked for `base_s`, and every further failure doubles the lock (up to `max_s`). A lock refuses the attempt
    before any password is checked, so guessing costs the guesser time and the server no PBKDF2 work. A success
    clears the user's strikes, never the address's: one valid account must not reset a guessing address.
    Keys idle for `forget_s` past their lock are forgotten; at most `max_keys` are kept (oldest dropped), so
    random user names cannot grow memory."""

    def __init__(self, max_failures: int = 5, base_s: float = 30.0, max_failures_per_address: int = 20,
                 max_s: float = 3600.0, forget_s: float = 900.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"user": max(1, max_failures), "address": max(1, max_failures_per_address)}
        self.base_s, self.max_s, self.forget_s, self.max_keys = base_s, max_s, forget_s, max_keys
        self.clock = clock
        self._strikes: OrderedDict[tuple[str, str], _Strikes] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: tuple[str, str], now: float) -> _Strikes | None:
        strikes = self._strikes.get(key)
        if strikes is not None and now - max(strikes.last, strikes.locked_until) > self.forget_s:
            del self._strikes[key]
            return None
        return strikes

    def _keys(self, user: str | None, address: str | None) -> list[tuple[str, str]]:
        return [(kind, value) for kind, value in (("user", user), ("address", address)) if value]

    def retry_after(self, user: str | None, address: str | None) -> float:
        """Seconds until this user from this address may try again; 0 when allowed now."""
        now = self.clock()
        with self._lock:
            waits = [s.locked_until - now for k in self._keys(user, address) if (s := self._get(k, now))]
        return max([0.0, *waits])

    def failed(self, user: str | None, address: str | None) -> float:
        """Record a failure; returns the lock it started (0 while under the limit)."""
        now, locked = self.clock(), 0.0
        with self._lock:
            for key in self._keys(user, address):
                strikes = self._get(key, now) or _Strikes()
                strikes.failures += 1
                strikes.last = now
                over = strikes.failures - self.limits[key[0]]
                if over >= 0:
                    lock = min(self.max_s, self.base_s * 2 ** min(over, 30))
                    strikes.locked_until = max(strikes.locked_until, now + lock)
                    locked = max(locked, lock)
                self._strikes[key] = strikes
                self._strikes.move_to_end(key)
            while len(self._strikes) > self.max_keys:
                self._strikes.popitem(last=False)
        if locked:
            log.warning("login backoff: user=%r address=%s locked for %.0f s after repeated failures",
                        user, address, locked)
        return locked

    def succeeded(self, user: str | None) -> None:
        with self._lock:
            self._strikes.pop(("user", user or ""), None)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bpo_assistant.ui.auth",
                                     description="Prints one line for BPO_AUTH_FILE (asks for the password twice).")
    parser.add_argument("user")
    parser.add_argument("--role", choices=ROLES, default=USER,
                        help="admin: may use the ナレッジ管理 / Knowledge admin tab (default: user)")
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse's usage error is exit 2, --help exit 0
        return int(exc.code or 0)
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        print("passwords differ", file=sys.stderr)
        return 1
    try:
        print(make_line(args.user, first, role=args.role))
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
