"""The datasets page over HTTP, on each database: a build from a filter equals the command's,
a build that selects nothing says so in one line, and the page's doors (CSRF, read-only, files
outside a build) stay shut."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sqlmodel import SQLModel, insert, select
from starlette.testclient import TestClient

from agent_tracer.cli import main
from agent_tracer.store import TraceStore
from agent_tracer.ui import create_app

TABLES = ("traces", "agent_runs", "llm_calls", "tool_executions", "feedback")


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def message(page: str) -> str:
    return re.search(r'id="message">([^<]*)<', page).group(1)


def copy_store(source_url: str, target_url: str) -> None:
    """The captured runs, row for row, into another (empty) database."""
    with TraceStore(source_url) as source, TraceStore(target_url, create=True) as target:
        with source.engine.connect() as read, target.engine.begin() as write:
            for name in TABLES:
                table = SQLModel.metadata.tables[name]
                rows = [dict(row) for row in read.execute(select(table)).mappings()]
                if rows:
                    write.execute(insert(table), rows)


@pytest.fixture
def filled_url(store_url: str, captured_url: str) -> str:
    copy_store(captured_url, store_url)
    return store_url


def build(client: TestClient, query: str, **fields: str):
    """The datasets page for `query`, then its form sent with `fields`."""
    page = client.get(f"/datasets?{query}")
    assert page.status_code == 200
    hidden = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.text))
    return client.post("/datasets", data={**hidden, **fields}, follow_redirects=False)


@pytest.mark.parametrize(
    ("kind", "query", "flags"),
    [
        ("sft", "outcome=success", ["--outcome", "success"]),
        ("dpo", "name=*-agent&tools=yes", ["--name", "*-agent", "--has-tool-calls"]),
    ],
)
def test_a_build_equals_the_command_for_the_same_filter(filled_url, tmp_path, kind, query, flags):
    folder = tmp_path / "ui-datasets"
    with TestClient(create_app(filled_url, datasets_dir=folder)) as client:
        response = build(client, query, kind=kind)
        assert response.status_code == 303, response.text
        build_id = response.headers["location"].rsplit("/", 1)[1]
        page = client.get(response.headers["location"]).text
        record = json.loads((folder / build_id / "build.json").read_text())
        train = client.get(f"/datasets/{build_id}/files/{kind}.jsonl")
    cli_out = tmp_path / "cli" / f"{kind}.jsonl"
    options = ["--eval-ratio", "0.1", "--no-progress", "--json", "--out", str(cli_out)]
    if kind == "sft":
        options += ["--tokenizer", "none"]
    result = CliRunner().invoke(main, ["dataset", kind, "--db", filled_url, *flags, *options])
    assert result.exit_code == 0, result.output
    expected = json.loads(result.output)
    assert {**record["summary"], "files": None} == {**expected, "files": None}
    assert set(record["summary"]["files"]) == set(expected["files"])
    assert expected["splits"]["train"] > 0
    rows = re.findall(
        r'<tr><td>([^<]+)</td><td class="num">([\d,]+)</td><td class="num">([\d,]+)</td><td>([^<]*)</td></tr>', page
    )
    assert [(name, int(n_in.replace(",", "")), int(n_out.replace(",", ""))) for name, n_in, n_out, _ in rows] == [
        (step["step"], step["in"], step["out"]) for step in expected["steps"]
    ]
    assert train.status_code == 200
    assert train.content == cli_out.read_bytes()
    command = re.search(r'<pre id="command">([^<]*)</pre>', page).group(1)
    assert command.startswith(f"agent-tracer dataset {kind} ")
    assert "--out=" in command and build_id in command


def test_a_build_that_selects_nothing_says_why_in_one_line(captured_url, tmp_path):
    folder = tmp_path / "ui-datasets"
    with TestClient(create_app(captured_url, datasets_dir=folder)) as client:
        response = build(client, "outcome=success&name=nobody", kind="sft")
    assert response.status_code == 400
    with TraceStore(captured_url) as store:  # other tests' reviews may have made more successes
        successes = store.count_traces(outcome="success")
    assert message(response.text) == (
        f"Not built: no trace matches the selection: 11 traces in the store; {successes} with outcome "
        "&#39;success&#39;; 0 of those named &#39;nobody&#39;"
    )
    assert "Traceback" not in response.text
    assert 'id="command"' in response.text  # the command, to try in a terminal
    assert list(folder.iterdir()) == []  # a failed build leaves no folder


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"kind": "reward"}, "Not built: kind must be sft or dpo, not &#39;reward&#39;"),
        ({"eval_ratio": "1"}, "Not built: eval ratio must be from 0 to 1 (less than 1), not &#39;1&#39;"),
        ({"max_samples": "-3"}, "Not built: max samples must be a whole number of at least 1, not &#39;-3&#39;"),
        ({"kind": "dpo", "kinds": "nonsense"}, "Not built: Invalid value for &#39;--kinds&#39;: &#39;nonsense&#39;"),
    ],
)
def test_a_bad_option_is_a_400_with_one_line(captured_url, tmp_path, fields, expected):
    with TestClient(create_app(captured_url, datasets_dir=tmp_path / "d")) as client:
        response = build(client, "", **fields)
    assert response.status_code == 400
    assert message(response.text).startswith(expected)
    assert "Traceback" not in response.text


def test_a_filter_the_command_cannot_express_is_named(captured_url, tmp_path):
    with TestClient(create_app(captured_url, datasets_dir=tmp_path)) as client:
        page = client.get("/datasets?status=error&held_out=yes&rating=3&limit=5").text
    assert "Not applied: status=error: the dataset command has no such filter" in page
    assert "Not applied: held_out=yes: only in part" in page
    command = re.search(r'<pre id="command">([^<]*)</pre>', page).group(1)
    assert "--min-rating=3 --include-held-out" in command and "limit" not in command
    assert "No outcome in the filter: the command&#39;s default applies (success)." in page


def test_the_command_hides_the_database_password():
    from agent_tracer.ui.datasets import plan
    from agent_tracer.ui.filters import parse_filters

    found = plan(parse_filters({"outcome": "success"}), {})
    command = found.command("postgresql+psycopg://user:s3cret@db.example/traces", "out/sft.jsonl")
    assert "s3cret" not in " ".join(command)
    assert "--db=postgresql+psycopg://user:***@db.example/traces" in command


def test_a_build_needs_its_csrf_token_and_is_refused_read_only(captured_url, tmp_path):
    folder = tmp_path / "d"
    with TestClient(create_app(captured_url, datasets_dir=folder)) as client:
        client.get("/datasets")
        refused = client.post("/datasets", data={"kind": "sft", "outcome": "success"})
        assert refused.status_code == 403
        assert "Refused" in refused.text
    assert not folder.exists() or list(folder.iterdir()) == []
    with TestClient(create_app(captured_url, datasets_dir=folder, read_only=True)) as client:
        page = client.get("/datasets?outcome=success").text
        assert 'id="off"' in page and "Show the command" in page and 'name="csrf_token"' not in page
        assert client.post("/datasets", data={"kind": "sft"}).status_code == 403
    assert not folder.exists() or list(folder.iterdir()) == []


def test_without_a_datasets_dir_the_page_shows_the_command_only(captured_url):
    with TestClient(create_app(captured_url)) as client:
        page = client.get("/datasets?outcome=failure&kind=dpo&negatives=synthetic")
        assert page.status_code == 200
        assert "agent-tracer ui --datasets-dir DIR" in page.text
        assert "--outcome=failure" in page.text and "--negatives=synthetic" in page.text


def test_only_the_files_a_build_wrote_are_served(captured_url, tmp_path):
    folder = tmp_path / "d"
    (tmp_path / "secret.txt").write_text("not yours")
    with TestClient(create_app(captured_url, datasets_dir=folder)) as client:
        response = build(client, "outcome=success", kind="sft")
        build_id = response.headers["location"].rsplit("/", 1)[1]
        assert client.get(f"/datasets/{build_id}/files/sft.manifest.json").status_code == 200
        for path in (
            f"/datasets/{build_id}/files/..%2F..%2Fsecret.txt",
            f"/datasets/{build_id}/files/..%2Fbuild.json",
            f"/datasets/{build_id}/files/build.json",  # in the folder, but not a file the build wrote
            f"/datasets/{build_id}/files/%2E%2E%2F%2E%2E%2Fsecret.txt",
            "/datasets/..%2Fsecret.txt/files/secret.txt",
            "/datasets/..%2F..%2Fsecret.txt",
            "/datasets/20250101-000000-abcdef",
        ):
            refused = client.get(path)
            assert refused.status_code == 404, path
            assert "not yours" not in refused.text and '"summary"' not in refused.text
        listed = client.get("/datasets").text
    assert f'href="http://testserver/datasets/{build_id}"' in listed


def test_a_build_past_its_time_limit_is_stopped(captured_url, tmp_path):
    from agent_tracer.ui.datasets import BuildFailed, plan, run_command
    from agent_tracer.ui.filters import parse_filters

    found = plan(parse_filters({"outcome": "success"}), {})
    with pytest.raises(BuildFailed, match="the build took longer than 0.05 s and was stopped"):
        run_command(found, captured_url, tmp_path, timeout_s=0.05)
