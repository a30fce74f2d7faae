"""Training on TRL + PEFT: SFT, DPO, a reward model and GRPO, each a LoRA adapter in a run folder.

    from trainer.train.config import SFTRunConfig
    from trainer.train.sft import train_sft

    summary = train_sft(SFTRunConfig(data="sft.jsonl", out="runs/sft", model="smollm2"))

`config.py` holds the settings and presets, `run.py` the run folder and what every kind shares,
`inputs.py` the row checks; `sft.py`, `preference.py` (DPO, reward) and `grpo.py` one kind each;
`merge.py` folds an adapter into full weights; `launch.py` runs any of them in several processes
through Accelerate (`python -m trainer.commands.train` is the entry point each process runs).
"""
