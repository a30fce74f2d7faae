"""What the recorded calls cost, for the pages: input tokens × input price + output tokens × output
price, by the call's model (the answering one, else the one asked for), at `agent_tracer.prices`
(the default table, or `--prices FILE` over it).

A call whose model has no price, or that recorded no token counts, is not priced: it shows "–"
with a tooltip saying why. A run's cost sums its priced calls and is partial ("≥ $…") when some
are not. The database sums tokens per model (`store.usage`); pricing happens here, in Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent_tracer.prices import Prices, price_of_model, tokens_cost
from agent_tracer.store import LLMCall
from agent_tracer.store.usage import ModelTokens

NO_TOKENS = "no token counts recorded"


def no_price(model: str | None) -> str:
    if not model:
        return "no model recorded"
    return f"no price for model {model}: add it with --prices FILE"


@dataclass
class Cost:
    usd: float = 0.0
    priced: int = 0
    """Calls priced."""
    unpriced: dict[str, int] = field(default_factory=dict)
    """Why a call is not priced → calls."""

    @property
    def known(self) -> bool:
        """Some call priced, or none to price (a run without calls costs nothing)."""
        return self.priced > 0 or not self.unpriced

    @property
    def partial(self) -> bool:
        return self.priced > 0 and bool(self.unpriced)

    @property
    def text(self) -> str:
        if not self.known:
            return "–"
        return ("≥ " if self.partial else "") + usd(self.usd)

    @property
    def title(self) -> str:
        """The tooltip: why calls are not priced (empty when all are)."""
        if not self.unpriced:
            return ""
        reasons = [f"{reason} ({calls} call{'' if calls == 1 else 's'})" for reason, calls in self.unpriced.items()]
        head = f"{sum(self.unpriced.values())} of {self.calls} calls not priced: " if self.partial else ""
        return head + "; ".join(reasons)

    @property
    def calls(self) -> int:
        return self.priced + sum(self.unpriced.values())

    def add(self, other: Cost) -> Cost:
        self.usd += other.usd
        self.priced += other.priced
        for reason, calls in other.unpriced.items():
            self.unpriced[reason] = self.unpriced.get(reason, 0) + calls
        return self


def usage_cost(usage: ModelTokens, prices: Prices) -> Cost:
    """The cost of a model's calls: their tokens at its price; unpriced when it has none."""
    price = price_of_model(usage.model, prices)
    if price is None:
        return Cost(unpriced={no_price(usage.model): usage.calls} if usage.calls else {})
    cost = Cost(tokens_cost(price, usage.input_tokens, usage.output_tokens), usage.calls - usage.untokened)
    if usage.untokened:
        cost.unpriced[NO_TOKENS] = usage.untokened
    return cost


def total_cost(usages: Iterable[ModelTokens], prices: Prices) -> Cost:
    """A run's (or a span's) cost from its calls' tokens per model."""
    return sum_costs(usage_cost(usage, prices) for usage in usages)


def sum_costs(items: Iterable[Cost]) -> Cost:
    total = Cost()
    for item in items:
        total.add(item)
    return total


def call_cost(call: LLMCall, prices: Prices) -> Cost:
    counted = call.input_tokens is not None and call.output_tokens is not None
    usage = ModelTokens(
        call.response_model or call.request_model,
        1,
        (call.input_tokens or 0) if counted else 0,
        (call.output_tokens or 0) if counted else 0,
        0 if counted else 1,
    )
    return usage_cost(usage, prices)


def usd(value: float) -> str:
    """Dollars to 3 significant digits below $1 ("$0.0075", "$0.000036"), cents above."""
    if value <= 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    decimals = min(2 - math.floor(math.log10(value)), 10)
    text = f"{value:.{max(decimals, 2)}f}".rstrip("0").rstrip(".")
    return f"${text}" if text not in ("0", "") else "<$0.0000000001"
