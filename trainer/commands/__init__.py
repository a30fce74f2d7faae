"""The trainer's command groups, loaded by `agent_tracer.cli` when they are run."""
