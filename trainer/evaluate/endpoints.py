"""What the endpoints under evaluation cost.

The endpoints themselves (`--endpoint NAME=URL[,model=…][,key_env=…][,price_in=…][,price_out=…]`)
are parsed by `agent_tracer.endpoints`, which `agent-tracer ui --endpoint` shares.

Prices come from the capture side's table (`agent_tracer.prices`: list prices per 1K tokens,
mid-2025, a `--prices FILE` over them, a model priced by its name or its longest known prefix),
overridden by an endpoint's own price.
"""

from __future__ import annotations

from agent_tracer.endpoints import Endpoint
from agent_tracer.prices import Prices, price_of_model


def price_of(endpoint: Endpoint, model: str | None, prices: Prices) -> tuple[float, float] | None:
    """(input, output) USD per 1K tokens for this endpoint's model, or None when unknown."""
    known = price_of_model(model, prices)
    if endpoint.price_in is None and endpoint.price_out is None:
        return known
    default_in, default_out = known or (None, None)
    price_in = endpoint.price_in if endpoint.price_in is not None else default_in
    price_out = endpoint.price_out if endpoint.price_out is not None else default_out
    if price_in is None or price_out is None:  # one given, the other unknown: the same for both
        price_in = price_out = price_in if price_in is not None else price_out
    assert price_in is not None and price_out is not None  # one was given, or both known
    return price_in, price_out
