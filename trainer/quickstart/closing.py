"""What the quickstart prints at the end: where things are, base against tuned in a short table
(with 95% Wilson intervals), and the commands that do the same against a real frontier API."""

from __future__ import annotations

from typing import Any

from trainer.quickstart.stages import Context

REAL_FRONTIER = """\
To do the same with your own agent and a real frontier API:
  export OPENAI_API_KEY=sk-...
  # capture: agent_tracer.init() and @agent_tracer.trace_agent on your agent (it calls the frontier),
  # agent_tracer.record_outcome(...) per run; or import labelled data:
  agent-tracer traces import bfcl:simple_python --format bfcl
  agent-tracer ui      # read the runs in a browser: rate them, correct failed answers ("Make a DPO pair")
  agent-tracer dataset sft --out data/sft.jsonl
  agent-tracer dataset dpo --out data/dpo.jsonl   # pairs from corrections, failed runs, synthetic negatives
  agent-tracer train sft --data data/sft.jsonl --out runs/sft
  agent-tracer train dpo --data data/dpo.jsonl --model runs/sft --out runs/dpo
  agent-tracer serve runs/dpo --model-name tuned --port 8001 &
  agent-tracer eval --cases bfcl:live_simple --endpoint tuned=http://127.0.0.1:8001/v1 \\
      --endpoint frontier=https://api.openai.com/v1,model=gpt-4o-mini,key_env=OPENAI_API_KEY,safe_names=true \\
      --report report/
  # routes.yaml: as {routes}, with the real frontier as fallback:
  #   fallback: {{url: "https://api.openai.com/v1", model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}}
  agent-tracer proxy --routes routes.yaml
  OPENAI_BASE_URL=http://127.0.0.1:8787/v1 python your_agent.py      # the agent unchanged"""


def closing(ctx: Context, seconds: float) -> str:
    report = ctx.path("report")
    lines = [
        f"\nquickstart finished in {duration(seconds)}; everything is in {ctx.folder}:",
        f"  report    {report / 'index.html'} (and report.md, results.jsonl)",
        f"  traces    {ctx.db}   (agent-tracer traces list --db {ctx.db})",
        f"  data      {ctx.path('data')}   runs {ctx.path('runs')}   routes {ctx.path('routes.yaml')}",
        "",
    ]
    if ctx.evaluation is not None:
        lines += table(ctx.evaluation)
    lines += ["", REAL_FRONTIER.format(routes=ctx.path("routes.yaml"))]
    return "\n".join(lines)


def table(evaluation: Any) -> list[str]:
    """Base against tuned: tool-call format and AST accuracy (BFCL's: the task succeeded, its calls
    matching the ground truth), each k/n with its 95% interval, what tool-call format counts, and
    the paired test on task success. Well-formed answers, which a prose answer passes, are named
    here and figured in the report: every task here wants a call, so tool-call format is the one
    that says whether the model makes them."""
    from agent_tracer.console import text_table
    from trainer.evaluate.metrics import METRICS

    tool_calls, well_formed = METRICS["tool_call_format"], METRICS["well_formed"]
    rows = [
        [summary.name, str(summary.tool_call_format), str(summary.success)] for summary in evaluation.summary.endpoints
    ]
    out = [f"base vs tuned on {len(evaluation.cases)} held-out tasks (95% Wilson intervals):"]
    out += ["  " + line for line in text_table(["endpoint", tool_calls.column, "AST accuracy"], rows).splitlines()]
    out += [
        f"  {tool_calls.column}: {tool_calls.definition}",
        f"  {well_formed.name.lower()}, in the report: {well_formed.definition}",
    ]
    for comparison in evaluation.summary.comparisons:
        out.append(
            f"  paired (exact McNemar) on success: {comparison.a} only {comparison.a_only}, {comparison.b} only "
            f"{comparison.b_only}, p = {comparison.p_value:.3g}"
        )
    return out


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
