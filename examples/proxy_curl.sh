#!/bin/sh
# One model call through `agent-tracer proxy`, grouped into a named run, then the run's outcome:
# what examples/proxy_agent.py does, with nothing but curl (any language can do the same).
#
#   agent-tracer proxy &                                   # 127.0.0.1:8787, in front of api.openai.com
#   OPENAI_API_KEY=sk-... sh examples/proxy_curl.sh        # or: sh examples/proxy_curl.sh http://host:port
#   agent-tracer traces show curl-...                      # the run id it prints: the call and the outcome
#
# Settings from the environment: RUN_ID (default: a new one), MODEL (gpt-4o-mini), OPENAI_API_KEY
# (forwarded upstream by the proxy, never stored). You will see the model's answer (JSON), then
# the proxy's receipt for the feedback: {"id": ..., "trace_id": ..., "status": "accepted"}.
set -eu

PROXY=${1:-http://127.0.0.1:8787}
RUN_ID=${RUN_ID:-curl-$(date +%s)-$$}
MODEL=${MODEL:-gpt-4o-mini}

# The call: X-Agent-Trace-Id groups every call sent with the same id into one trace (the run);
# X-Agent-Name names it. The proxy answers with the trace id in the x-agent-trace-id header.
curl --silent --show-error --fail "$PROXY/v1/chat/completions" \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer ${OPENAI_API_KEY:-sk-local}" \
  -H "X-Agent-Trace-Id: $RUN_ID" \
  -H "X-Agent-Name: curl-agent" \
  -d '{"model": "'"$MODEL"'", "messages": [{"role": "user", "content": "What is the status of order A-17?"}]}'
echo

# Later, from anywhere: the run's outcome, under the same run id (fields: outcome, rating 0-5,
# comment, label). 202 when queued for the store; 400 with the reason otherwise.
curl --silent --show-error --fail "$PROXY/agent-tracer/v1/traces/$RUN_ID/feedback" \
  -H "Content-Type: application/json" \
  -d '{"outcome": "success", "rating": 5, "comment": "sent with curl"}'
echo
echo "run $RUN_ID recorded: agent-tracer traces show $RUN_ID"
