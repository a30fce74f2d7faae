"""index.html and its charts, as a user opens them: the figures of report.md, real PNGs inline, a
model's `<script>` shown as text, and a page of tables (saying why) where matplotlib is missing."""

from __future__ import annotations

import base64
import re
import sys

import pytest

from trainer.evaluate import evaluate

PNG = b"\x89PNG\r\n\x1a\n"
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order <by id>",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
    },
}
SCRIPT = "<script>alert('owned')</script>"


def case(i: int) -> dict:
    return {
        "id": f"o{i}",
        "messages": [{"role": "system", "content": "You look up <orders>."}, {"role": "user", "content": f"order {i}"}],
        "tools": [TOOL],
        "expected": {"tool_calls": [{"name": "lookup_order", "arguments": {"id": f"A{i}"}}]},
    }


@pytest.fixture
def result(scripted):
    tuned = scripted(
        {f"order {i}": dict(calls=[("lookup_order", {"id": f"A{i}"})], delay=0.01 * i) for i in range(5)}
        | {"order 5": dict(content=SCRIPT)}
    )
    base = scripted({f"order {i}": dict(calls=[("lookup_order", {"id": f"A{i}"})]) for i in range(2)})
    return evaluate([case(i) for i in range(6)], {"tuned": tuned.openai_base_url, "base": base.openai_base_url})


def test_page_and_charts(result, tmp_path):
    written = result.write(tmp_path)
    page = written["index.html"].read_text()
    markdown = written["report.md"].read_text()
    success = markdown.split("## Task success")[1].split("##")[0]
    rates = re.findall(r"^\| (\w+) \| ([\d.]+%) \| (\S+) \|", success, re.MULTILINE)
    assert [name for name, _, _ in rates] == ["tuned", "base"]
    for name, rate, interval in rates:  # each endpoint's rate and interval as report.md prints them
        assert f"<td>{name}</td><td>{rate}</td><td>{interval}</td>" in page
    assert "83.3%" in page and "33.3%" in page

    for name in ("rates.png", "latency.png", "tools.png"):
        data = written[name].read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000
        assert f"data:image/png;base64,{base64.b64encode(data).decode()}" in page
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page
    assert "You look up &lt;orders&gt;." in page and "Find an order &lt;by id&gt;" in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing fetched from elsewhere
    assert "Worst failures: base (4 failed)" in page and "lookup_order({&quot;id&quot;: [&quot;A5&quot;]})" in page


def test_page_without_matplotlib(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed: importing it fails
    written = result.write(tmp_path)
    page = written["index.html"].read_text()
    assert set(written) == {"results.jsonl", "case-messages.jsonl", "report.md", "index.html"}
    assert "charts need matplotlib" in page and "<td>tuned</td><td>83.3%</td>" in page and "data:image" not in page
