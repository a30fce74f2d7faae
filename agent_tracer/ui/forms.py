"""The pages' HTML forms as they arrive: application/x-www-form-urlencoded bodies."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

READ_ONLY = "This UI is read-only (started with --read-only): reviews are not saved."
"""The answer to a form's POST in read-only mode."""


async def form_fields(request: Request) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded, as the pages' forms send them):
    the first value of each name. Other bodies have no fields."""
    return {key: values[0] for key, values in (await form_lists(request)).items()}


async def form_lists(request: Request) -> dict[str, list[str]]:
    """An HTML form's fields, every value of each name (checkboxes send one name many times)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(body, keep_blank_values=True)
