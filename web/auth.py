"""Access control: HTTP Basic (plain or hashed passwords) and bearer/query tokens.

Every comparison is constant-time. Hashes are Werkzeug's (`scrypt:` or `pbkdf2:`),
produced with `python3 -m web.auth USER` so no secret needs to sit on a command line;
a verified (user, password) pair is remembered so a page polling /status does not pay
the deliberately slow hash on every request.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import sys
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash


class AuthConfigError(ValueError):
    """An --auth, --auth-file or --token value that cannot be used."""


@dataclass
class Authenticator:
    """Who may watch: Basic-auth users and/or a token. Empty means open."""

    plain: dict[str, str] = field(default_factory=dict)
    hashed: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    _verified: set[str] = field(default_factory=set)

    @property
    def enabled(self) -> bool:
        return bool(self.plain or self.hashed or self.token)

    @property
    def basic(self) -> bool:
        return bool(self.plain or self.hashed)

    def check_basic(self, user: str, password: str) -> bool:
        """True if the user exists and the password matches (constant-time)."""
        if user in self.plain:
            return hmac.compare_digest(self.plain[user].encode(), password.encode())
        stored = self.hashed.get(user)
        if stored is None:
            check_password_hash(next(iter(self.hashed.values()), "pbkdf2:sha256:1$x$y"), password)
            return False
        key = hashlib.sha256(f"{user}\0{password}\0{stored}".encode()).hexdigest()
        if key in self._verified:
            return True
        if check_password_hash(stored, password):
            if len(self._verified) > 1024:
                self._verified.clear()
            self._verified.add(key)
            return True
        return False

    def check_token(self, token: str) -> bool:
        return self.token is not None and hmac.compare_digest(self.token.encode(),
                                                              token.encode())


def build_authenticator(auth: str | None, auth_file: str | None,
                        token: str | None) -> Authenticator:
    """Parse the options; AuthConfigError with a one-line message when malformed."""
    a = Authenticator(token=token)
    if token is not None and len(token) < 8:
        raise AuthConfigError("--token must be at least 8 characters")
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise AuthConfigError("--auth must be USER:PASSWORD")
        a.plain[user] = password
    if auth_file:
        try:
            lines = Path(auth_file).read_text().splitlines()
        except OSError as exc:
            raise AuthConfigError(f"--auth-file {auth_file}: {exc.strerror}") from None
        for n, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, stored = line.partition(":")
            if not sep or not user or not stored.startswith(("scrypt:", "pbkdf2:")):
                raise AuthConfigError(f"--auth-file {auth_file} line {n}: expected "
                                      "USER:HASH (make one with: python3 -m web.auth USER)")
            a.hashed[user] = stored
        if not a.hashed:
            raise AuthConfigError(f"--auth-file {auth_file}: no users")
    return a


def main(argv: list[str] | None = None) -> int:
    """Print an --auth-file line for a user, asking for the password."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or ":" in args[0]:
        sys.stderr.write("usage: python3 -m web.auth USER  (prints USER:HASH)\n")
        return 2
    password = getpass.getpass(f"password for {args[0]}: ")
    sys.stdout.write(f"{args[0]}:{generate_password_hash(password)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
