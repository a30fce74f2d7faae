"""The `agent-tracer` command groups, one module each (`traces.py`: `agent-tracer traces …`).

`agent_tracer/cli.py` loads a group only when it is run or listed, so a group may import what it
needs at its top; heavy libraries (SQLModel, torch) still belong inside the commands."""
