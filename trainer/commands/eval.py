"""`agent-tracer eval`: eval cases against endpoints side by side, graded, with a report.

    agent-tracer eval --cases eval.jsonl --endpoint tuned=http://127.0.0.1:8001/v1 \\
        --endpoint frontier=https://api.openai.com/v1,model=gpt-4o-mini,key_env=OPENAI_API_KEY --report report/
    agent-tracer eval --from-store --split eval --manifest sft.manifest.json --endpoint …
    agent-tracer eval --cases bfcl:simple_python --endpoint …
    agent-tracer eval --capability --endpoint tuned=… --endpoint base=…    # regression check alone

The case format is in `trainer.evaluate.cases`, the endpoint options in `agent_tracer.endpoints`
(both also in `--help`). Prints a short table (`--json`: every figure as JSON) and writes
results.jsonl, report.md, index.html and its PNG charts into `--report`. `--capability` adds the
general-capability check (`trainer.evaluate.capability`) as its own metric.
"""

from __future__ import annotations

import json
from typing import Any

import click

from agent_tracer.console import config_options, db_option, json_option, open_store, prices_option, progress_bar
from trainer.evaluate.runner import RunConfig


@click.command("eval")
@click.option(
    "--cases",
    "specs",
    multiple=True,
    metavar="FILE",
    help="Case file (JSONL), BFCL question file, or bfcl:CATEGORY (e.g. bfcl:simple_python, "
    "bfcl:live_multiple). Repeatable.",
)
@click.option("--from-store", is_flag=True, help="Cases from the store's held-out traces (see --split).")
@click.option(
    "--split",
    type=click.Choice(["eval", "held-out"]),
    default="eval",
    show_default=True,
    help="eval: the traces a dataset build held out (listed in --manifest); held-out: traces "
    "tagged held-out (imported BFCL live_* questions).",
)
@click.option(
    "--manifest",
    default="sft.manifest.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The dataset manifest naming the eval traces (agent-tracer dataset sft writes it).",
)
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    required=True,
    metavar="NAME=URL[,OPTION=VALUE…]",
    help="An OpenAI-compatible endpoint; options: model=M, key_env=ENV (the variable holding "
    "its API key), price_in=USD, price_out=USD (per 1K tokens), safe_names=true. Repeatable.",
)
@config_options(RunConfig)
@prices_option
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N cases.")
@click.option(
    "--capability",
    is_flag=False,
    flag_value="builtin",
    default=None,
    metavar="[lm-eval:TASK]",
    help="Also ask every endpoint the 48 shipped multiple-choice questions (general knowledge, "
    "arithmetic, reading), to catch what narrow fine-tuning cost; reported as its own rate per "
    "endpoint with the paired test. Alone (no --cases) it is the whole evaluation. "
    "lm-eval:TASK names an lm-evaluation-harness task instead (needs pip install lm-eval).",
)
@click.option(
    "--report",
    default="eval-report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for results.jsonl, report.md, index.html (one self-contained page with charts) "
    "and the charts as PNG (charts need matplotlib).",
)
@click.option(
    "--worst",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Failures shown per endpoint in the report.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@db_option
@json_option
def eval_command(
    specs: tuple[str, ...],
    from_store: bool,
    split: str,
    manifest: str,
    endpoints: tuple[str, ...],
    prices: str | None,
    limit: int | None,
    capability: str | None,
    report: str,
    worst: int,
    progress: bool,
    db: str | None,
    as_json: bool,
    **run: Any,
) -> None:
    """Send eval cases to each endpoint, grade the answers, report the metrics side by side.

    \b
    A case file holds one JSON object a line:
      {"id": "weather-1",
       "messages": [{"role": "user", "content": "Weather in Paris?"}],
       "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {...}}}],
       "expected": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"},
                                    "allowed": {"unit": ["celsius", ""]}}],
                    "answer": {"contains": ["Paris"], "fields": {"temp_c": [21, 21.5]}}},
       "format": {"json": true, "schema": {...}, "max_length": 2000}}
    "arguments" are exact values, "allowed" lists acceptable values ("" = may be left out); an
    empty tool_calls list means no call is right. Calls are matched by BFCL's AST rules, in any
    order. A line that is not a case is named (FILE:LINE) and skipped.

    \b
    The report folder gets results.jsonl (a row per case × endpoint), report.md
    and index.html: each rate per endpoint with its 95% Wilson interval (bar
    charts with error bars), latency, tokens and cost (latency box plots), the
    exact McNemar test between endpoints, a per-tool table and chart, and the
    worst failures as conversations (messages, tools offered, expected vs got).
    """
    from agent_tracer.endpoints import endpoints_from
    from agent_tracer.errors import AgentTracerError
    from agent_tracer.prices import load_prices
    from trainer.evaluate.capability import check_spec
    from trainer.evaluate.cases import load_cases
    from trainer.evaluate.evaluation import evaluate

    def warn(message: str) -> None:
        click.echo(f"skipped {message}", err=True)

    try:
        endpoint_list = endpoints_from(endpoints)
        table = load_prices(prices)
        if capability is not None:
            check_spec(capability)
        if capability is not None and not specs and not from_store:
            cases = []
        elif from_store:
            with open_store(db) as store:
                cases = load_cases(specs, store=store, split=split, manifest=manifest, limit=limit, warn=warn)
        else:
            cases = load_cases(specs, limit=limit, warn=warn)
        bar = _bar(len(cases) * len(endpoint_list)) if progress else None
        try:
            result = evaluate(
                cases,
                endpoint_list,
                RunConfig(**run),
                table,
                on_row=(lambda row: bar.update(1)) if bar is not None else None,
                capability=capability or False,
            )
        finally:
            if bar is not None:
                bar.close()
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    written = result.write(report, worst)
    if as_json:
        click.echo(
            json.dumps({**result.to_dict(), "files": {k: str(v) for k, v in written.items()}}, indent=2, default=str)
        )
    else:
        click.echo(result.table())
        click.echo(f"\nwrote {', '.join(str(path) for path in written.values())}")


def _bar(total: int) -> Any:
    return progress_bar("evaluating", " requests", total)
