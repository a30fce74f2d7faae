"""The chat template a model is trained and served with: its own when that renders tool calls, else
a built-in tool-calling template.

Small models often ship templates that ignore `tools` and `tool_calls` (SmolLM2's renders only
`content`), so a conversation with tool calls would be trained as if the calls were not there. The
built-in template is ChatML, as most small instruct models already know it:

    <|im_start|>system
    {system prompt}

    # Tools
    … <tools>
    {"type": "function", "function": {...}}
    </tools> …<|im_end|>
    <|im_start|>user
    {question}<|im_end|>
    <|im_start|>assistant
    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call><|im_end|>
    <|im_start|>tool
    <tool_response>
    {result}
    </tool_response><|im_end|>

`{% generation %}` marks what the assistant writes (its text, its calls and its `<|im_end|>`), so
TRL can put the loss on those tokens only. Arguments given as a string (a deliberately broken call
in a DPO rejected answer) are rendered as they are. Serving parses the same `<tool_call>` tags.
(After TRL's Qwen2.5 training template, which has the same shape.)
"""

from __future__ import annotations

from typing import Any

BUILT_IN = "built-in"
OWN = "own"

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

TOOL_CALLING_TEMPLATE = (
    "{%- set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '"
    + DEFAULT_SYSTEM_PROMPT
    + "' %}"
    """{{- '<|im_start|>system\\n' + system }}
{%- if tools %}
    {{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n'
        + 'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
    {%- for tool in tools %}
        {{- '\\n' + (tool | tojson) }}
    {%- endfor %}
    {{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments '
        + 'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n'
        + '{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call>' }}
{%- endif %}
{{- '<|im_end|>\\n' }}
{%- for message in messages %}
    {%- if message['role'] == 'system' and loop.first %}
    {%- elif message['role'] == 'assistant' %}
        {{- '<|im_start|>assistant\\n' }}
        {%- generation %}
        {%- if message['content'] %}
            {{- message['content'] }}
        {%- endif %}
        {%- for call in message['tool_calls'] or [] %}
            {%- set call = call['function'] if call['function'] is defined else call %}
            {%- if message['content'] or not loop.first %}
                {{- '\\n' }}
            {%- endif %}
            {{- '<tool_call>\\n{"name": "' + call['name'] + '", "arguments": ' }}
            {%- if call['arguments'] is string %}
                {{- call['arguments'] }}
            {%- else %}
                {{- call['arguments'] | tojson }}
            {%- endif %}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>' }}
        {%- endgeneration %}
        {{- '\\n' }}
    {%- elif message['role'] == 'tool' %}
        {{- '<|im_start|>tool\\n<tool_response>\\n' + message['content'] + '\\n</tool_response><|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}"""
)


def renders_tool_calls(tokenizer: Any) -> bool:
    """Whether the tokenizer's own chat template renders a tool-calling exchange (the call's name
    and arguments, and the tool's result), as TRL checks it."""
    from trl.chat_template_utils import supports_tool_calling

    return supports_tool_calling(tokenizer)


def use_tool_template(tokenizer: Any) -> str:
    """Give the tokenizer a template that renders tool calls: keep its own when it does (returns
    "own"), else install the built-in one (returns "built-in")."""
    if tokenizer.chat_template and renders_tool_calls(tokenizer):
        return OWN
    tokenizer.chat_template = TOOL_CALLING_TEMPLATE
    return BUILT_IN


def use_training_template(tokenizer: Any) -> str:
    """`use_tool_template`, then make sure training can put the loss on the assistant's tokens:
    an own template without `{% generation %}` markers stays only where TRL has a training twin of
    it (it swaps that in while training); otherwise the built-in template replaces it. The
    tokenizer gets a pad token (its end-of-sequence token) where it has none."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    choice = use_tool_template(tokenizer)
    if choice == OWN and not has_generation_markers(tokenizer.chat_template):
        try:
            get_training_chat_template(tokenizer)
        except ValueError:
            tokenizer.chat_template = TOOL_CALLING_TEMPLATE
            choice = BUILT_IN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return choice
