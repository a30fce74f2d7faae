"""`agent-tracer cost`: when does the fine-tuned model pay for itself? (see `trainer.cost`)

    agent-tracer cost --frontier-price 0.01 --tuned-price 0.0005 --fine-tune-cost 5000 --from-store
    agent-tracer cost --frontier-price 0.01 --tuned-price 0.0005 \\
        --compute-cost 800 --engineering-hours 40 --hourly-rate 105 --daily-tokens 20000000
"""

from __future__ import annotations

import json
from datetime import datetime

import click

from agent_tracer.console import TimeParam, db_option, json_option, open_store

_PRICE = click.FloatRange(min=0)


@click.command()
@click.option("--frontier-price", type=_PRICE, required=True, help="Frontier model, USD per 1K tokens (blended).")
@click.option("--tuned-price", type=_PRICE, required=True, help="Tuned model, USD per 1K tokens (its serving cost).")
@click.option("--fine-tune-cost", type=_PRICE, help="Total cost of fine-tuning, USD (or give its parts).")
@click.option("--compute-cost", type=_PRICE, help="Part of it: training compute, USD.")
@click.option("--engineering-hours", type=_PRICE, help="Part of it: engineering hours (with --hourly-rate).")
@click.option("--hourly-rate", type=_PRICE, help="USD per engineering hour.")
@click.option("--daily-tokens", type=_PRICE, help="Tokens a day the model serves (or --from-store).")
@click.option(
    "--from-store",
    is_flag=True,
    help="Measure the daily tokens in the trace store: input + output tokens of the LLM calls per day.",
)
@click.option(
    "--since",
    type=TimeParam(),
    default="30d",
    show_default=True,
    help="With --from-store: calls since (a date, or an age: 7d).",
)
@db_option
@json_option
def cost(
    frontier_price: float,
    tuned_price: float,
    fine_tune_cost: float | None,
    compute_cost: float | None,
    engineering_hours: float | None,
    hourly_rate: float | None,
    daily_tokens: float | None,
    from_store: bool,
    since: datetime,
    db: str | None,
    as_json: bool,
) -> None:
    """Savings per 1K tokens, break-even tokens and days, monthly savings, and the fine-tuning cost."""
    from agent_tracer.errors import AgentTracerError
    from trainer.cost import cost_benefit, daily_volume
    from trainer.cost import fine_tune_cost as total_cost

    if from_store and daily_tokens is not None:
        raise click.ClickException("give --daily-tokens or --from-store, not both")
    days: list[dict[str, object]] = []
    if from_store:
        with open_store(db) as store:
            daily_tokens, days = daily_volume(store, since)
        if daily_tokens is None:
            raise click.ClickException(
                f"no LLM calls in the trace store since {since:%Y-%m-%d %H:%M} (widen --since, or give --daily-tokens)"
            )
    try:
        result = cost_benefit(
            frontier_price,
            tuned_price,
            total_cost(fine_tune_cost, compute_cost, engineering_hours, hourly_rate),
            daily_tokens,
            days,
        )
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.render())
