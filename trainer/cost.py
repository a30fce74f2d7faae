"""Cost-benefit of swapping the frontier model for the tuned one: when does fine-tuning pay off?

    savings per 1K tokens  = frontier price − tuned price            (USD per 1K tokens, blended)
    break-even tokens      = fine-tuning cost / savings per 1K × 1,000
    break-even days        = break-even tokens / daily tokens
    monthly savings        = daily tokens × 365.25 / 12 / 1,000 × savings per 1K

The fine-tuning cost is compute plus engineering (hours × hourly rate), or one figure given as it
is. The worked example: frontier $0.01 and tuned $0.0005 per 1K tokens save $0.0095 per 1K, so a
$5,000 fine-tune breaks even after 5,000 / 0.0095 × 1,000 ≈ 526 million tokens.

Daily tokens are the user's own, measured (`from_store`): input plus output tokens of the stored
LLM calls, per UTC day, averaged over the days from the first to the last day with calls in the
window (a quiet day inside it counts as zero, the days before recording began do not). Calls the
proxy's router made besides the answer are left out (shadow calls, and primary answers it refused
before asking the fallback), so each agent request counts once; the tokens the tuned model itself
answered (route "primary") are counted apart, for the savings already being made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from agent_tracer.errors import ConfigError

DAYS_PER_MONTH = 365.25 / 12


@dataclass
class FineTuneCost:
    total: float
    compute: float | None = None
    engineering_hours: float | None = None
    hourly_rate: float | None = None

    @property
    def engineering(self) -> float | None:
        if self.engineering_hours is None or self.hourly_rate is None:
            return None
        return self.engineering_hours * self.hourly_rate


def fine_tune_cost(
    total: float | None = None,
    compute: float | None = None,
    engineering_hours: float | None = None,
    hourly_rate: float | None = None,
) -> FineTuneCost:
    """The fine-tuning cost from its parts, from its total, or both when they agree (to the cent)."""
    if (engineering_hours is None) != (hourly_rate is None):
        raise ConfigError("engineering hours and the hourly rate go together: give both or neither")
    if any(value is not None and value < 0 for value in (total, compute, engineering_hours, hourly_rate)):
        raise ConfigError("costs, hours and rates cannot be negative")
    parts = [
        value
        for value in (
            compute,
            engineering_hours * hourly_rate if engineering_hours is not None and hourly_rate is not None else None,
        )
        if value is not None
    ]
    if total is None and not parts:
        raise ConfigError(
            "give the fine-tuning cost (--fine-tune-cost) or its parts (--compute-cost, "
            "--engineering-hours with --hourly-rate)"
        )
    summed = sum(parts)
    if total is not None and parts and abs(total - summed) >= 0.01:
        raise ConfigError(f"the parts of the fine-tuning cost sum to ${summed:,.2f}, not the ${total:,.2f} given")
    return FineTuneCost(total if total is not None else summed, compute, engineering_hours, hourly_rate)


@dataclass
class CostBenefit:
    frontier_price: float
    """USD per 1K tokens."""
    tuned_price: float
    fine_tune: FineTuneCost
    daily_tokens: float | None = None
    daily_volume: list[dict[str, Any]] = field(default_factory=list)
    """Per day measured: {"day", "input_tokens", "output_tokens", "tuned_tokens"} (from the store)."""

    @property
    def tuned_share(self) -> float | None:
        """The share of the measured tokens the tuned model answered through the router; None
        when nothing was measured or nothing was routed to it."""
        total = sum(day["input_tokens"] + day["output_tokens"] for day in self.daily_volume)
        tuned = sum(day.get("tuned_tokens", 0) for day in self.daily_volume)
        return tuned / total if total and tuned else None

    @property
    def savings_per_1k(self) -> float:
        return self.frontier_price - self.tuned_price

    @property
    def break_even_tokens(self) -> float | None:
        """None when the tuned model saves nothing per token: it never pays off."""
        if self.savings_per_1k <= 0:
            return None
        return self.fine_tune.total / self.savings_per_1k * 1000

    @property
    def break_even_days(self) -> float | None:
        tokens = self.break_even_tokens
        if tokens is None or not self.daily_tokens:
            return None
        return tokens / self.daily_tokens

    @property
    def monthly_savings(self) -> float | None:
        if self.daily_tokens is None:
            return None
        return self.daily_tokens * DAYS_PER_MONTH / 1000 * self.savings_per_1k

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "fine_tune": {**asdict(self.fine_tune), "engineering": self.fine_tune.engineering},
            "savings_per_1k": self.savings_per_1k,
            "break_even_tokens": self.break_even_tokens,
            "break_even_days": self.break_even_days,
            "monthly_savings": self.monthly_savings,
            "tuned_share": self.tuned_share,
        }

    def render(self) -> str:
        cost = self.fine_tune
        parts = []
        if cost.compute is not None:
            parts.append(f"compute ${cost.compute:,.2f}")
        if cost.engineering is not None:
            parts.append(
                f"engineering {cost.engineering_hours:g} h × ${cost.hourly_rate:,.2f} = ${cost.engineering:,.2f}"
            )
        lines = [
            f"frontier ${self.frontier_price:g} / 1K tokens, tuned ${self.tuned_price:g} / 1K tokens: "
            f"saves ${self.savings_per_1k:.6g} per 1K tokens",
            f"fine-tuning cost ${cost.total:,.2f}" + (f" ({'; '.join(parts)})" if parts else ""),
        ]
        tokens = self.break_even_tokens
        if tokens is None:
            lines.append("the tuned model costs at least as much per token: fine-tuning never pays for itself")
        else:
            lines.append(f"break-even after {tokens:,.0f} tokens ({tokens / 1e6:,.1f} million)")
        if self.daily_tokens is not None:
            measured = f" (measured over {len(self.daily_volume)} day(s) with calls)" if self.daily_volume else ""
            lines.append(f"daily volume {self.daily_tokens:,.0f} tokens{measured}")
            if self.break_even_days is not None:
                lines.append(f"break-even in {self.break_even_days:,.1f} days")
            lines.append(f"monthly savings ${self.monthly_savings:,.2f}")
        if self.tuned_share is not None and self.monthly_savings is not None:
            lines.append(
                f"the tuned model answered {self.tuned_share:.1%} of these tokens (route primary): "
                f"${self.monthly_savings * self.tuned_share:,.2f} a month saved at that share"
            )
        return "\n".join(lines)


def cost_benefit(
    frontier_price: float,
    tuned_price: float,
    fine_tune: FineTuneCost,
    daily_tokens: float | None = None,
    daily_volume: list[dict[str, Any]] | None = None,
) -> CostBenefit:
    if frontier_price < 0 or tuned_price < 0:
        raise ConfigError("prices per 1K tokens cannot be negative")
    if daily_tokens is not None and daily_tokens < 0:
        raise ConfigError("the daily token volume cannot be negative")
    return CostBenefit(frontier_price, tuned_price, fine_tune, daily_tokens, daily_volume or [])


def daily_volume(store: Any, since: Any = None) -> tuple[float | None, list[dict[str, Any]]]:
    """The store's mean tokens per day (input + output of every LLM call started since `since`)
    over the days from its first to its last day with calls, and the per-day counts."""
    import sqlalchemy as sa
    from sqlmodel import col

    from agent_tracer.store.models import LLMCall
    from agent_tracer.store.queries import parse_time

    day = sa.func.date(LLMCall.started_at)
    tokens = sa.func.coalesce(LLMCall.input_tokens, 0) + sa.func.coalesce(LLMCall.output_tokens, 0)
    answered_by_tuned = sa.case((col(LLMCall.route) == "primary", tokens), else_=0)
    route = sa.func.coalesce(LLMCall.route, "")  # NULL (not routed) must not make the filter NULL
    extra = sa.or_(route == "shadow", sa.and_(route == "primary", col(LLMCall.fallback_reason).is_not(None)))
    query = (
        sa.select(
            day,
            sa.func.coalesce(sa.func.sum(LLMCall.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(LLMCall.output_tokens), 0),
            sa.func.sum(answered_by_tuned),
        )
        .where(col(LLMCall.started_at).is_not(None), sa.not_(extra))
        .group_by(day)
        .order_by(day)
    )
    if since is not None:
        query = query.where(col(LLMCall.started_at) >= parse_time(since))
    with store.engine.connect() as conn:
        rows: list[dict[str, Any]] = [
            {
                "day": str(value),
                "input_tokens": int(tokens_in),
                "output_tokens": int(tokens_out),
                "tuned_tokens": int(tuned or 0),
            }
            for value, tokens_in, tokens_out, tuned in conn.execute(query)
        ]
    if not rows:
        return None, []
    span = (date.fromisoformat(rows[-1]["day"]) - date.fromisoformat(rows[0]["day"])).days + 1
    total = sum(row["input_tokens"] + row["output_tokens"] for row in rows)
    return total / span, rows
