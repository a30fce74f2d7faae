"""Who may use the proxy, and which key goes upstream.

By default the proxy holds no keys: each client sends its own API key, which is forwarded upstream
unchanged (and never stored). With `--require-key`, the proxy holds the upstream keys instead
(`OPENAI_API_KEY`, `ANTHROPIC_API_KEY` from its environment) and clients authenticate to the proxy
with keys of its own (`AGENT_TRACER_PROXY_KEYS`, comma-separated, or `--key-file`, one a line): a
client key is checked, dropped, and the upstream key put in its place, so client keys never reach
the upstream and upstream keys never reach the clients. An upstream with no key held (a local
vLLM, say) gets the request with no credentials.

Clients send their proxy key the way their SDK sends an API key: `Authorization: Bearer KEY`
(OpenAI) or `x-api-key: KEY` (Anthropic).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent_tracer.errors import ConfigError

PROXY_KEYS_ENV = "AGENT_TRACER_PROXY_KEYS"
UPSTREAM_KEY_ENVS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
MIN_KEY_CHARS = 16


def load_client_keys(key_file: str | None = None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The keys clients may present: from `key_file` (one a line, `#` comments) and the
    environment. ConfigError when there are none, or one is too short to be a secret."""
    keys = [key.strip() for key in environ.get(PROXY_KEYS_ENV, "").split(",") if key.strip()]
    if key_file:
        try:
            lines = Path(key_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the key file {key_file}: {exc.strerror or exc}") from None
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ConfigError(f"--require-key needs client keys: set {PROXY_KEYS_ENV}=key1,key2 or pass --key-file")
    short = [n for n, key in enumerate(keys, start=1) if len(key) < MIN_KEY_CHARS]
    if short:
        raise ConfigError(f"client key #{short[0]} is shorter than {MIN_KEY_CHARS} characters; use random keys")
    return list(dict.fromkeys(keys))


def load_upstream_keys(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """API name → the key the proxy sends upstream, for the APIs whose variable is set."""
    return {api: environ[name].strip() for api, name in UPSTREAM_KEY_ENVS.items() if environ.get(name, "").strip()}


class KeyCheck:
    """Checks a client's proxy key and swaps in the upstream key."""

    def __init__(self, client_keys: Iterable[str], upstream_keys: Mapping[str, str]) -> None:
        self._client_keys = [key.encode() for key in client_keys]
        self._upstream = {
            "openai": {"authorization": f"Bearer {key}"} if (key := upstream_keys.get("openai")) else {},
            "anthropic": {"x-api-key": key} if (key := upstream_keys.get("anthropic")) else {},
        }

    def allows(self, headers: Mapping[str, str]) -> bool:
        """Whether the request carries one of the client keys (compared in constant time)."""
        presented = [headers.get("x-api-key", "")]
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            presented.append(authorization[7:].strip())
        found = False
        for candidate in presented:
            if candidate:
                raw = candidate.encode()
                for key in self._client_keys:
                    found |= hmac.compare_digest(raw, key)
        return found

    def upstream_credentials(self, api: str) -> dict[str, str]:
        """Headers carrying the proxy's own key for `api` (none when it holds no key for it)."""
        return self._upstream[api]


__all__ = ["CREDENTIAL_HEADERS", "KeyCheck", "PROXY_KEYS_ENV", "load_client_keys", "load_upstream_keys"]
