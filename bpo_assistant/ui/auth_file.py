"""The auth file as a served login reads it (ui/auth.py has the format): only entries of at least
settings.auth_min_iterations PBKDF2 rounds, only from a file nobody but its owner can read, re-read when it changes.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from .auth import MIN_ITERATIONS, AuthFileError, make_verifier, parse_accounts

log = logging.getLogger(__name__)


def iterations_of(encoded: str) -> int:
    return int(encoded.split("$")[1])


def load_auth_file(path: Path | str, min_iterations: int = MIN_ITERATIONS) -> tuple[dict[str, str], list[str]]:
    """What a served login uses: (user -> encoded hash of every usable entry, one warning per refused entry).
    Raises AuthFileError when the file is readable by group or others (the README once created it 0644: hashes
    anyone on the host could take away to crack) or when no entry is strong enough."""
    accounts = parse_accounts(path)
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthFileError(f"{path}: readable by group/others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    weak = [a.user for a in accounts.values() if iterations_of(a.encoded) < min_iterations]
    warnings = [f"{path}: {u!r} is hashed with {iterations_of(accounts[u].encoded)} PBKDF2 iterations "
                f"(< {min_iterations}): login refused; re-create the line with `python -m bpo_assistant.ui.auth "
                f"{u}`" for u in weak]
    users = {u: a.encoded for u, a in accounts.items() if u not in weak}
    if not users:
        raise AuthFileError(f"{path}: no entry has {min_iterations} PBKDF2 iterations or more "
                            f"({', '.join(map(repr, weak))}); re-create them with `python -m bpo_assistant.ui.auth USER`")
    return users, warnings


class AuthFile:
    """The login verifier of a served chat, re-reading the file when it changes (mtime, size or inode: an atomic
    replace too), so adding or revoking a user needs no restart. A file that becomes unusable refuses every
    login (fail closed) and says why once per change."""

    def __init__(self, path: Path | str, min_iterations: int = MIN_ITERATIONS) -> None:
        self.path, self.min_iterations = str(path), min_iterations
        self._stamp: tuple | None = None
        self._verify: Callable[[str, str], bool] = lambda username, password: False
        self._lock = threading.Lock()

    def load(self) -> list[str]:
        """Read the file now (AuthFileError/OSError as load_auth_file); the refused entries' warnings."""
        stamp = self._stat()
        users, warnings = load_auth_file(self.path, self.min_iterations)
        with self._lock:
            self._stamp, self._verify = stamp, make_verifier(users)
        return warnings

    def _stat(self) -> tuple:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode)

    def __call__(self, username: str, password: str) -> bool:
        try:
            changed = self._stat() != self._stamp
            if changed:
                for warning in self.load():
                    log.warning("auth file reloaded: %s", warning)
        except (OSError, AuthFileError) as exc:
            log.warning("auth file unusable, every login refused until it is fixed: %s", exc)
            with self._lock:
                self._stamp, self._verify = None, (lambda username, password: False)
            return False
        with self._lock:
            verify = self._verify
        return verify(username, password)
