"""Who may use the UI, and proof that a POST came from its own pages.

- **CSRF**: each browser gets a random session cookie (HttpOnly, SameSite=Strict); the forms carry
  a token that is the HMAC of that session under a secret drawn when the process starts. A POST is
  accepted only when its token matches its cookie (compared in constant time) and, when the browser
  names an Origin, that origin is the UI's own. Another site can neither read the token nor send
  the cookie.
- **Keys** (optional): the proxy's client keys (`AGENT_TRACER_PROXY_KEYS`, checked by the proxy's
  `KeyCheck`), sent as `Authorization: Bearer KEY`, or typed once into the login form, which sets
  a cookie holding the key's HMAC (never the key itself).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

from agent_tracer.proxy.auth import KeyCheck

SESSION_COOKIE = "agent_tracer_ui_session"
LOGIN_COOKIE = "agent_tracer_ui_login"
CSRF_FIELD = "csrf_token"


class Guard:
    """The process's secret, the CSRF tokens made from it, and the key check (None: no keys)."""

    def __init__(self, keys: Iterable[str] | None) -> None:
        self._secret = secrets.token_bytes(32)
        self._keys = list(keys) if keys is not None else None
        self._check = KeyCheck(self._keys, {}) if self._keys is not None else None
        self._logins = {self._sign("login", key) for key in self._keys or ()}

    @property
    def requires_key(self) -> bool:
        return self._check is not None

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, session: str) -> str:
        return self._sign("csrf", session)

    def csrf_ok(self, session: str | None, token: str | None) -> bool:
        """Whether `token` was made for this session by this process."""
        if not session or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())

    def allows(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """Whether a request may see the UI: no keys are required, or it carries one (a bearer
        token, or the login cookie)."""
        if self._check is None:
            return True
        if self._check.allows(headers):
            return True
        login = cookies.get(LOGIN_COOKIE, "")
        found = False
        for candidate in self._logins:
            found |= hmac.compare_digest(login.encode(), candidate.encode())
        return found

    def login_cookie(self, key: str) -> str | None:
        """The login cookie's value for `key`, or None when it is not one of the keys."""
        if self._check is None or not self._check.allows({"authorization": f"Bearer {key}"}):
            return None
        return self._sign("login", key)

    def _sign(self, purpose: str, value: str) -> str:
        return hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()
