"""The built-in tool-calling template: installed only where the model's own cannot render tools,
and its generation markers cover exactly what the assistant writes."""

from __future__ import annotations

from pathlib import Path

import trl

from trainer.chat_template import BUILT_IN, OWN, TOOL_CALLING_TEMPLATE, use_tool_template

SMOLLM2_TEMPLATE = (  # SmolLM2-135M-Instruct's own: renders only `content`
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
CONVERSATION = [
    {"role": "system", "content": "You help."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    {"role": "tool", "content": '{"temp": 21}', "name": "get_weather"},
    {"role": "assistant", "content": "It is 21 degrees."},
]


def test_a_template_that_ignores_tools_is_replaced_and_a_capable_one_kept(make_tokenizer):
    tokenizer = make_tokenizer(SMOLLM2_TEMPLATE)
    assert use_tool_template(tokenizer) == BUILT_IN and tokenizer.chat_template == TOOL_CALLING_TEMPLATE
    qwen = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    tokenizer = make_tokenizer(qwen)
    assert use_tool_template(tokenizer) == OWN and tokenizer.chat_template == qwen


def test_the_loss_mask_is_exactly_the_assistants_output(tiny_tokenizer):
    out = tiny_tokenizer.apply_chat_template(
        CONVERSATION, tools=TOOLS, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    trained = tiny_tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    assert trained == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>'
        "It is 21 degrees.<|im_end|>"
    )
    text = tiny_tokenizer.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    assert '<|im_start|>tool\n<tool_response>\n{"temp": 21}\n</tool_response><|im_end|>' in text


def test_the_prompt_is_a_prefix_of_the_training_text(tiny_tokenizer):
    prompt = tiny_tokenizer.apply_chat_template(
        CONVERSATION[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True
    )
    full = tiny_tokenizer.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert full.startswith(prompt) and prompt.endswith("<|im_start|>assistant\n")


def test_string_arguments_are_rendered_as_they_are(tiny_tokenizer):
    broken = [
        CONVERSATION[1],
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Par'}}],
        },
    ]
    text = tiny_tokenizer.apply_chat_template(broken, tools=TOOLS, tokenize=False)
    assert '{"name": "get_weather", "arguments": {"city": "Par}\n</tool_call>' in text
