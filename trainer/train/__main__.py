"""The training entry point each process runs: `python -m trainer.train sft|dpo|reward|grpo …`,
the same flags as `agent-tracer train`. For launchers that start the processes themselves:

    accelerate launch --num_processes 8 -m trainer.train sft --config sft.yaml
    torchrun --nproc-per-node 8 -m trainer.train sft --config sft.yaml
    srun python -m trainer.train sft --config sft.yaml     # with torchrun's variables set per task
"""

from trainer.commands.train import train

if __name__ == "__main__":
    train(prog_name="python -m trainer.train")
