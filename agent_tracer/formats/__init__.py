"""Other tools' files in and out of the trace store: `agent-tracer traces import` and `export`.

    imports.py       the `Reader` an import format gives; JSON-lines examples, bad lines skipped
    examples.py      one imported conversation → the trace, call and feedback records of a run
    openai_jsonl.py  OpenAI fine-tuning JSONL (also what `export --format openai-jsonl` writes)
    sharegpt.py      ShareGPT and its LLaMA-Factory variants (function_call / observation turns)
    bfcl.py          Berkeley Function Calling Leaderboard questions with their ground truth
    export.py        stored runs → conversations → OpenAI fine-tuning JSONL or Parquet

An imported example becomes a successful run, as if it had been captured: a trace (source
"import"), one chat call whose answer is the example's last assistant message, and feedback with
outcome "success". Its ids derive from the example, so importing a file again adds nothing.
Traces tagged `HELD_OUT_TAG` are evaluation data: exports leave them out unless asked, and
training must never use them.
"""

from agent_tracer.formats.examples import HELD_OUT_TAG

__all__ = ["HELD_OUT_TAG"]
