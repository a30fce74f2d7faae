"""Training data from the trace store: select traces, curate them, and write SFT, DPO and reward rows
that TRL consumes as they are (`rows.py` describes the shapes)."""
