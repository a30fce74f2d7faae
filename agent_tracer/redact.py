"""Keep credentials out of the store and the logs.

Headers are never stored at all; this catches what hides in bodies and URLs: API keys pasted into
a prompt, a bearer token echoed in an error message, `?api-key=` in an endpoint URL.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Key shapes of the common providers, and generic bearer tokens.
KEY_PATTERN = re.compile(
    r"(?:sk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{16,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*)"
)
REDACTED = "[REDACTED]"


_GITHUB = re.compile(r"gh[pousr]_")


def has_secret(text: str) -> bool:
    # Every key shape above contains one of these literals; plain substring tests first skip the
    # regex on almost every body (the writer runs this twice per stored call).
    if (
        "sk-" in text
        or "AKIA" in text
        or "AIza" in text
        or "xox" in text
        or "hf_" in text
        or "bearer" in text.lower()  # any case, as the pattern; lower() is a fast copy
        or ("gh" in text and _GITHUB.search(text))
    ):
        return KEY_PATTERN.search(text) is not None
    return False


def scrub_text(text: str) -> str:
    return KEY_PATTERN.sub(REDACTED, text)


def map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """A copy of a JSON-like value with `change` applied to every string in it (keys left as
    they are): how secrets are scrubbed, and masks and redaction rules applied."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [map_strings(item, change) for item in value]
    return value


def scrub(value: Any) -> Any:
    """A copy of a JSON-like value with every key-shaped substring replaced."""
    return map_strings(value, scrub_text)


@functools.lru_cache(maxsize=256)
def safe_endpoint(url: str) -> str:
    """The URL without query string, fragment or user info: where keys hide in URLs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
