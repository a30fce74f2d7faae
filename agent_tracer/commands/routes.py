"""`agent-tracer routes show|check FILE`: read a routes file as the proxy will, before it does.

agent-tracer routes check routes.yaml     # loads it and connects to every endpoint
agent-tracer routes show routes.yaml      # what each model name is routed to (--json)
"""

from __future__ import annotations

import asyncio
import json

import click

from agent_tracer.errors import ConfigError
from agent_tracer.proxy.routes import EXAMPLE, describe_routes, load_routes, route_dict, unreachable

_FILE = click.argument("path", metavar="ROUTES_FILE", type=click.Path(dir_okay=False))


HELP = f"""Check and show a routes file for `agent-tracer proxy --routes FILE`.

\b
{EXAMPLE}
fallback asks the primary first and the fallback when it fails (no connection, time-out,
429/5xx) or answers badly (an unknown tool, arguments that are not JSON or miss the tool's
schema, an empty answer); shadow answers from the fallback and records the primary's answer
beside it; canary sends canary_percent of the calls to the primary first.
"""


@click.group(help=HELP)
def routes() -> None:
    pass


@routes.command()
@_FILE
@click.option("--json", "as_json", is_flag=True, help="Print the routes as JSON (key variables named, never keys).")
def show(path: str, as_json: bool) -> None:
    """Print what each model name is routed to (its keys' variables need not be set here)."""
    loaded = _load(path, keys=False)
    if as_json:
        click.echo(json.dumps({name: route_dict(route) for name, route in loaded.items()}, indent=2))
        return
    for line in describe_routes(loaded):
        click.echo(line)


@routes.command()
@_FILE
def check(path: str) -> None:
    """Load the file and connect to every endpoint; exit 1 with the reasons if the proxy would refuse it."""
    loaded = _load(path)
    problems = asyncio.run(unreachable(loaded))
    for problem in problems[1:]:
        click.echo(f"error: {path}: {problem}", err=True)
    if problems:
        raise click.ClickException(f"{path}: {problems[0]}")
    endpoints = {endpoint.url for route in loaded.values() for _, endpoint in route.endpoints}
    click.echo(f"ok: {len(loaded)} route(s), {len(endpoints)} endpoint(s) reachable")


def _load(path: str, keys: bool = True) -> dict:
    try:
        return load_routes(path, keys=keys)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
