"""`evaluate` against the project's own `serve` (the tiny Llama, made to write known answers): the
tool calls it parses out of `<tool_call>` blocks are graded as a user's cases say, figures by hand."""

from __future__ import annotations

from trainer.evaluate import evaluate

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "An order's status.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


def case(marker: str, order_id: str = "A-17") -> dict:
    return {
        "id": marker,
        "messages": [{"role": "user", "content": f"Where is order {order_id}? {marker}"}],
        "tools": [LOOKUP],
        "expected": {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": order_id}}]},
    }


def test_served_answers_are_graded_call_by_call(base_url):
    cases = [
        case("[call]"),  # right call, right argument
        case("[call] ", order_id="B-42"),  # right call, wrong argument
        case("[text]"),  # no call where one was expected
        case("[broken]"),
    ]  # a <tool_call> block that does not parse
    result = evaluate(cases, {"tuned": base_url})
    figures = result.summary.endpoints[0]
    assert (figures.errors, figures.success.k, figures.success.n) == (0, 1, 4)
    assert (figures.tool_selection.k, figures.tool_selection.n) == (2, 4)  # [call] twice
    assert (figures.arguments.k, figures.arguments.n) == (1, 4)
    assert (figures.well_formed.k, figures.well_formed.n) == (3, 4)  # only the broken block is not well-formed
    assert (figures.tool_call_format.k, figures.tool_call_format.n) == (
        2,
        4,
    )  # [text] makes no call, [broken] a bad one
    by_case = {row.case_id: row for row in result.rows}
    assert by_case["[call]"].success and not by_case["[broken]"].success
    assert figures.input_tokens > 0 and figures.output_tokens > 0
