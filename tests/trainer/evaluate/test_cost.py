"""Break-even arithmetic, the fine-tuning cost's parts, and the daily volume measured in a store."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.store import TraceStore
from trainer.cost import cost_benefit, daily_volume, fine_tune_cost


def test_worked_example():
    result = cost_benefit(0.01, 0.0005, fine_tune_cost(5000))
    assert result.savings_per_1k == pytest.approx(0.0095)
    assert result.break_even_tokens == pytest.approx(5000 / 0.0095 * 1000)
    assert round(result.break_even_tokens / 1e6) == 526  # "about 526 million tokens"
    with_volume = cost_benefit(0.01, 0.0005, fine_tune_cost(5000), daily_tokens=10_000_000)
    assert with_volume.break_even_days == pytest.approx(52.63, abs=0.01)
    assert with_volume.monthly_savings == pytest.approx(10_000_000 * 365.25 / 12 / 1000 * 0.0095)
    assert cost_benefit(0.001, 0.002, fine_tune_cost(5000)).break_even_tokens is None  # never pays off


def test_fine_tune_cost_parts():
    cost = fine_tune_cost(compute=800, engineering_hours=40, hourly_rate=105)
    assert (cost.total, cost.engineering) == (5000, 4200)
    assert fine_tune_cost(5000, 800, 40, 105).total == 5000
    for bad in (
        {"total": 6000, "compute": 800, "engineering_hours": 40, "hourly_rate": 105},
        {"engineering_hours": 40},
        {},
    ):
        with pytest.raises(Exception) as info:
            fine_tune_cost(**bad)
        assert type(info.value).__name__ == "ConfigError"


def _calls(days: dict[str, tuple[int, int]]) -> list:
    return [
        (
            "llm_call",
            {
                "id": f"c{i}",
                "trace_id": f"{i:032x}",
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "started_at": datetime.fromisoformat(day),
            },
        )
        for i, (day, (tokens_in, tokens_out)) in enumerate(days.items())
    ]


def test_daily_volume_from_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    with TraceStore(url) as store:
        # Three days from first to last, one of them quiet: 6,000 tokens over 3 days.
        store.write(
            _calls(
                {
                    "2025-03-01T10:00:00": (1000, 500),
                    "2025-03-01T18:00:00": (500, 0),
                    "2025-03-03T09:00:00": (3000, 1000),
                }
            )
        )
        mean, days = daily_volume(store, since="2025-01-01")
    assert mean == pytest.approx(2000) and [day["day"] for day in days] == ["2025-03-01", "2025-03-03"]
    assert days[0] == {"day": "2025-03-01", "input_tokens": 1500, "output_tokens": 500, "tuned_tokens": 0}

    result = CliRunner().invoke(
        main,
        [
            "cost",
            "--frontier-price",
            "0.01",
            "--tuned-price",
            "0.0005",
            "--compute-cost",
            "800",
            "--engineering-hours",
            "40",
            "--hourly-rate",
            "105",
            "--from-store",
            "--since",
            "2025-01-01",
            "--db",
            url,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["daily_tokens"] == 2000 and figures["fine_tune"]["engineering"] == 4200
    assert figures["break_even_days"] == pytest.approx(5000 / 0.0095 * 1000 / 2000)

    text = (
        CliRunner()
        .invoke(main, ["cost", "--frontier-price", "0.01", "--tuned-price", "0.0005", "--fine-tune-cost", "5000"])
        .stdout
    )
    assert "break-even after 526,315,789 tokens (526.3 million)" in text


def test_routed_calls_count_once_and_the_tuned_share_is_measured(tmp_path):
    """Behind the proxy's router: a request the tuned model answered, one it failed (its refused
    answer and the fallback's are stored; the agent got one), and a shadow call (not served)."""

    def call(n: int, route: str, tokens: tuple[int, int], reason: str | None = None) -> tuple[str, dict]:
        return (
            "llm_call",
            {
                "id": f"r{n}",
                "trace_id": f"{n:032x}",
                "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "route": route,
                "fallback_reason": reason,
                "started_at": datetime.fromisoformat("2025-03-01T12:00:00"),
            },
        )

    with TraceStore(f"sqlite:///{tmp_path / 'traces.db'}") as store:
        store.write(
            [
                call(1, "primary", (300, 100)),
                call(2, "primary", (300, 20), "unknown_tool"),
                call(3, "fallback", (300, 300), "unknown_tool"),
                call(4, "fallback", (500, 100), "shadow"),
                call(5, "shadow", (500, 80)),
            ]
        )
        mean, days = daily_volume(store)
    assert mean == 400 + 600 + 600 and days[0]["tuned_tokens"] == 400
    result = cost_benefit(0.01, 0.0005, fine_tune_cost(5000), mean, days)
    assert result.tuned_share == pytest.approx(400 / 1600)
    assert "the tuned model answered 25.0% of these tokens" in result.render()
