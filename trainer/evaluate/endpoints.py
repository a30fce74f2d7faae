"""Endpoints to evaluate, and what their tokens cost.

An endpoint is any OpenAI-compatible Chat Completions server, named on the command line as

    --endpoint NAME=URL[,model=MODEL][,key_env=ENV][,price_in=USD][,price_out=USD][,safe_names=true]

- `model`: the model to ask for; without it, the first model the server lists (GET /models),
  which is what a server of one tuned model wants.
- `key_env`: the environment variable holding its API key (e.g. OPENAI_API_KEY). The key itself is
  never taken on the command line, printed, or written to a result; without `key_env` the
  endpoint gets a placeholder key (local servers ignore it).
- `price_in` / `price_out`: US dollars per 1,000 input / output tokens, for a model the price
  table does not know (a self-hosted model costs what its hardware costs per token).
- `safe_names`: send tool names with the characters OpenAI refuses (BFCL's dots) as "_", and
  read the answer's names back; BFCL does the same for such models.

Prices come from `DEFAULT_PRICES` (list prices per 1K tokens, mid-2025; they change, so check
them), overridden by a `--prices FILE` (JSON or YAML: `{model: {input: USD, output: USD}}`, per
1K tokens) and by an endpoint's own price. A model is priced by its name or the longest known
prefix of it ("gpt-4o-2024-08-06" is priced as "gpt-4o").
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_tracer.errors import ConfigError

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (0.00125, 0.01),
    "gpt-5-mini": (0.00025, 0.002),
    "gpt-5-nano": (0.00005, 0.0004),
    "gpt-4.1": (0.002, 0.008),
    "gpt-4.1-mini": (0.0004, 0.0016),
    "gpt-4.1-nano": (0.0001, 0.0004),
    "gpt-4o": (0.0025, 0.01),
    "gpt-4o-mini": (0.00015, 0.0006),
    "o3": (0.002, 0.008),
    "o3-mini": (0.0011, 0.0044),
    "o4-mini": (0.0011, 0.0044),
    "claude-opus-4": (0.015, 0.075),
    "claude-opus-4-5": (0.005, 0.025),
    "claude-sonnet-4": (0.003, 0.015),
    "claude-3-7-sonnet": (0.003, 0.015),
    "claude-3-5-haiku": (0.0008, 0.004),
    "claude-haiku-4-5": (0.001, 0.005),
    "gemini-2.5-pro": (0.00125, 0.01),
    "gemini-2.5-flash": (0.0003, 0.0025),
}
"""Model → (input, output) US dollars per 1K tokens: list prices, mid-2025."""

_OPTIONS = ("model", "key_env", "price_in", "price_out", "safe_names")
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
PLACEHOLDER_KEY = "not-needed"


@dataclass
class Endpoint:
    name: str
    url: str
    model: str | None = None
    key_env: str | None = None
    price_in: float | None = None
    """US dollars per 1K input tokens (None: from the price table)."""
    price_out: float | None = None
    safe_names: bool = False

    @classmethod
    def parse(cls, spec: str) -> Endpoint:
        """`NAME=URL[,key=value…]` (see the module docstring)."""
        name, sep, rest = spec.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ConfigError(f"--endpoint {spec!r}: expected NAME=URL[,model=…][,key_env=…]")
        url, *options = rest.split(",")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--endpoint {name}: {url!r} is not an http(s) URL")
        endpoint = cls(name.strip(), url.strip())
        for option in options:
            key, sep, value = option.partition("=")
            key = key.strip()
            if not sep or key not in _OPTIONS:
                raise ConfigError(f"--endpoint {name}: unknown option {option!r} (known: {', '.join(_OPTIONS)})")
            if key in ("price_in", "price_out"):
                try:
                    setattr(endpoint, key, float(value))
                except ValueError:
                    raise ConfigError(f"--endpoint {name}: {key} must be a number of dollars per 1K tokens") from None
            elif key == "safe_names":
                endpoint.safe_names = value.strip().lower() in ("1", "true", "yes")
            else:
                setattr(endpoint, key, value.strip())
        return endpoint

    def api_key(self) -> str:
        """The key from `key_env`'s variable; an unset one is an error naming the variable only."""
        if self.key_env is None:
            return PLACEHOLDER_KEY
        key = os.environ.get(self.key_env)
        if not key:
            raise ConfigError(f"endpoint {self.name}: the environment variable {self.key_env} is not set")
        return key

    def to_dict(self) -> dict[str, Any]:
        """What a report may show: never the key, only the variable's name."""
        return {"name": self.name, "url": self.url, "model": self.model, "key_env": self.key_env}


def endpoints_from(specs: Any) -> list[Endpoint]:
    """Endpoints from `Endpoint`s, `NAME=URL…` strings, or a {name: url} dict; names unique."""
    items = [f"{name}={url}" for name, url in specs.items()] if isinstance(specs, dict) else list(specs)
    endpoints = [item if isinstance(item, Endpoint) else Endpoint.parse(item) for item in items]
    if not endpoints:
        raise ConfigError("no endpoint to evaluate: give --endpoint NAME=URL")
    names = [endpoint.name for endpoint in endpoints]
    if len(set(names)) != len(names):
        raise ConfigError(f"endpoint names must differ: {', '.join(names)}")
    return endpoints


def safe_name(name: str) -> str:
    return _UNSAFE.sub("_", name)


def load_prices(path: str | Path | None) -> dict[str, tuple[float, float]]:
    """The default table, updated from a JSON or YAML price file."""
    prices = dict(DEFAULT_PRICES)
    if path is None:
        return prices
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the price file {path}: {exc.strerror or exc}") from None
    if path.suffix in (".yaml", ".yml"):
        from trainer.train.config import read_yaml

        table = read_yaml(path)
    else:
        try:
            table = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected {{model: {{input: USD, output: USD}}}} per 1K tokens")
    for model, price in table.items():
        try:
            prices[str(model)] = (float(price["input"]), float(price["output"]))
        except (TypeError, KeyError, ValueError):
            raise ConfigError(f"{path}: the price of {model} needs input and output, USD per 1K tokens") from None
    return prices


def price_of(
    endpoint: Endpoint, model: str | None, prices: dict[str, tuple[float, float]]
) -> tuple[float, float] | None:
    """(input, output) USD per 1K tokens for this endpoint's model, or None when unknown."""
    known = None
    if model:
        prefixes = [name for name in prices if model == name or model.startswith(name + "-")]
        if prefixes:
            known = prices[max(prefixes, key=len)]
    if endpoint.price_in is None and endpoint.price_out is None:
        return known
    default_in, default_out = known or (None, None)
    price_in = endpoint.price_in if endpoint.price_in is not None else default_in
    price_out = endpoint.price_out if endpoint.price_out is not None else default_out
    if price_in is None or price_out is None:  # one given, the other unknown: the same for both
        price_in = price_out = price_in if price_in is not None else price_out
    assert price_in is not None and price_out is not None  # one was given, or both known
    return price_in, price_out
