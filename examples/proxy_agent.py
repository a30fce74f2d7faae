"""The same order agent with no tracing code in it: `agent-tracer proxy` records its calls instead.

    agent-tracer proxy &                                     # 127.0.0.1:8787, in front of api.openai.com
    OPENAI_API_KEY=sk-... python examples/proxy_agent.py     # the proxy forwards the key, never stores it
    agent-tracer traces list --name support-agent            # the runs, with their outcomes

    # no key? put the local stand-in API behind the proxy:
    python -m agent_tracer.testing.upstream --port 8000 &
    agent-tracer proxy --upstream openai=http://127.0.0.1:8000/v1 &

The agent (the tool loop of decorator_agent.py, imported as it is) only points the openai SDK's
`base_url` at the proxy. Two headers make each run one trace: `X-Agent-Trace-Id` (any id of the
agent's own) groups the run's model calls, `X-Agent-Name` names it. When a run is over, its
outcome goes to `POST /agent-tracer/v1/traces/{run id}/feedback`, with the same run id. You will
see each answer with its run id and outcome; `agent-tracer traces show RUN_ID` shows a run's two
calls and its outcome.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

import httpx
import openai
from decorator_agent import ORDERS, answer_question


def run(client: openai.OpenAI, proxy: str, model: str, order_id: str, expected: str) -> str:
    """One run of the agent, grouped under a run id of its own; its outcome sent as feedback."""
    run_id = f"orders-{order_id}-{uuid.uuid4().hex[:8]}"
    run_client = client.with_options(default_headers={"X-Agent-Trace-Id": run_id, "X-Agent-Name": "support-agent"})
    answer = answer_question(run_client, model, f"What is the status of order {order_id}?")
    success = expected in answer.lower()
    feedback = {"outcome": "success" if success else "failure", "rating": 5 if success else 1}
    httpx.post(f"{proxy}/agent-tracer/v1/traces/{run_id}/feedback", json=feedback).raise_for_status()  # 202
    print(f"{order_id}: {answer!r} (run {run_id}: {feedback['outcome']})")
    return run_id


def main(argv: list[str] | None = None) -> list[str]:
    """Run the agent once per order through the proxy; returns the run ids."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="http://127.0.0.1:8787", help="agent-tracer proxy's address")
    parser.add_argument("--model", default="gpt-4o-mini", help="a model, or a model name a routes file answers")
    args = parser.parse_args(argv)

    proxy = args.proxy.rstrip("/")
    client = openai.OpenAI(base_url=f"{proxy}/v1", api_key=os.environ.get("OPENAI_API_KEY", "sk-local"))
    try:
        return [run(client, proxy, args.model, order_id, status) for order_id, status in ORDERS.items()]
    except (openai.APIConnectionError, httpx.ConnectError):
        sys.exit(f"error: no agent-tracer proxy at {proxy}: start one with `agent-tracer proxy`")
    except openai.APIStatusError as exc:  # the model API's refusal, passed back by the proxy (no key: 401)
        sys.exit(f"error: {exc.status_code} from the model API through the proxy: {exc.message}")


if __name__ == "__main__":
    main()
