"""The web UI: read agent runs in a browser, review them, and turn them into datasets.

A Starlette app (`create_app`) rendering Jinja2 templates with autoescaping on; the templates and
the stylesheet ship in the package, nothing loads from a CDN and there is no build step. Pages:

- `/`: the runs, newest first, filtered by the URL's query (a link is shareable), a page at a
  time by keyset (`?after=` the last row's start time and id), never by OFFSET;
- `/runs/{id}`: one run as the model saw it, each model call expandable to its bodies, the tool
  executions and the feedback history, with a review form that writes the same feedback rows as
  `agent-tracer traces rate`;
- the runs page's bulk form (`/bulk-review`): one review for every ticked run;
- `/review`: the review queue, the unrated runs of the list's filter one at a time, with keyboard
  shortcuts in `static/review.js` (the page's buttons work without it);
- the run page's replay (`POST /runs/{id}/replay`, `ui/replay.py`): a recorded model call, or all
  of them in order, sent to a routes file's or a named endpoint and judged as the proxy's router
  judges a primary, the answer shown beside the recorded one; nothing is stored or recorded;
- `/datasets?<the runs page's filters>`: an SFT or DPO dataset of the filter's runs, built by the
  `agent-tracer dataset` command in a child process (`ui/datasets.py`), its summary, files and
  command on `/datasets/{build}`.

Trace contents are untrusted (end users and models wrote them): they reach the page only through
autoescaped template variables. Every write is a POST carrying a CSRF token bound to the browser's
session cookie; `read_only` refuses writes; `keys` (the proxy's client keys) guard every page,
sent as a bearer token or through a login cookie. `agent-tracer ui` serves it.
"""

from agent_tracer.ui.app import create_app

__all__ = ["create_app"]
