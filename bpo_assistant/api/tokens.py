"""Bearer tokens for the HTTP API: a file of `name:sha256$hex` lines (BPO_API_TOKENS_FILE), never the tokens.

A token is 32 random bytes, so a plain SHA-256 is enough to store it (nothing to brute-force, unlike a
password, which is why the login file uses PBKDF2 and this one does not). Create one with:

    python -m bpo_assistant.api.tokens NAME >> tokens.txt     # the token itself goes to stderr, once
    chmod 600 tokens.txt

The file is re-read when it changes, so revoking a token is deleting its line. `name` is what the API passes
to the assistant as `user` (use the person's login name).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import sys
import threading
from pathlib import Path

PREFIX = "sha256$"


class TokenFileError(ValueError):
    pass


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def new_token() -> str:
    return "bpo_" + secrets.token_urlsafe(32)


def parse_tokens_file(path: Path | str) -> dict[str, str]:
    """digest -> name. Refuses a file others can read, a malformed line, or a file without tokens."""
    path = Path(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(f"{path}: readable by group/others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    tokens: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        hexpart = encoded[len(PREFIX):]
        if not sep or not name or not encoded.startswith(PREFIX) or len(hexpart) != 64 \
                or any(c not in "0123456789abcdef" for c in hexpart):
            raise TokenFileError(f"{path}:{lineno}: expected name:{PREFIX}<64 hex digits>")
        tokens[hexpart] = name
    if not tokens:
        raise TokenFileError(f"{path}: no tokens")
    return tokens


class TokenStore:
    """The tokens file, re-read when its mtime or size changes. `None` path = no tokens (every check fails)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        if path is not None:
            self._tokens = parse_tokens_file(path)  # a bad file stops the server at start, with its reason
            st = os.stat(path)
            self._seen = (st.st_mtime_ns, st.st_size)

    def _current(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            st = os.stat(self.path)
            seen = (st.st_mtime_ns, st.st_size)
            if seen != self._seen:
                with self._lock:
                    self._tokens, self._seen = parse_tokens_file(self.path), seen
        except (OSError, TokenFileError):
            # A file broken while serving closes the API rather than keeping revoked tokens alive.
            self._tokens, self._seen = {}, None
        return self._tokens

    def name_for(self, token: str) -> str | None:
        want = digest(token)
        found = None
        for known, name in self._current().items():
            if hmac.compare_digest(known, want):
                found = name
        return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help") or ":" in args[0] or not args[0].strip():
        print("usage: python -m bpo_assistant.api.tokens NAME  (prints a line for BPO_API_TOKENS_FILE)",
              file=sys.stderr)
        return 2
    token = new_token()
    print(f"token for {args[0]} (shown once): {token}", file=sys.stderr)
    print(f"{args[0]}:{PREFIX}{digest(token)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
