"""Reading `<tool_call>` blocks back out of a model's text."""

from trainer.tool_calls import parse_reply


def test_calls_and_text_are_split():
    reply = parse_reply(
        'Let me look.\n<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-17"}}\n'
        '</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'
        "\n</tool_call>"
    )
    assert reply.content == "Let me look."
    assert reply.calls == [
        {"name": "lookup_order", "arguments": {"order_id": "A-17"}},
        {"name": "get_weather", "arguments": {"city": "Paris"}},
    ]
    assert reply.well_formed


def test_malformed_and_cut_calls_are_kept_as_malformed():
    reply = parse_reply(
        '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": </tool_call>'
        '<tool_call>{"arguments": {}}</tool_call><tool_call>\n{"name": "f", "arguments": [1]}'
        '</tool_call><tool_call>\n{"name": "cut", "argu'
    )
    assert reply.calls == [] and len(reply.malformed) == 4 and not reply.well_formed


def test_plain_text_has_no_calls():
    reply = parse_reply("Order A-17 has shipped.")
    assert (reply.content, reply.calls, reply.well_formed) == ("Order A-17 has shipped.", [], True)
