"""Training in several processes, on one machine or several: Accelerate's launcher starts them
(torchrun underneath), each runs the same entry point, `python -m trainer.commands.train <kind> …`.

    agent-tracer train sft --data sft.jsonl --out runs/sft --num-processes 4 --distributed fsdp
    accelerate launch --num_processes 8 -m trainer.commands.train sft --config sft.yaml   # a scheduler's own start
    torchrun --nproc-per-node 8 -m trainer.commands.train sft --config sft.yaml

`agent-tracer train … --num-processes N` checks what can be checked before any process starts
(the process count against the devices, the strategy against the installed packages, the port),
then runs `accelerate launch` with a shipped strategy file (`presets/distributed/`) or the
user's own, and waits. The processes find their rank in the environment the launcher sets; the
main one alone writes the run folder (`is_main`), the others wait for it where they must
(`wait_for_everyone`). Data is sharded by the Trainer's Accelerate data loader, so the global
batch is batch_size x grad_accum x processes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click

from agent_tracer.errors import ConfigError

LAUNCHED_ENV = "AGENT_TRACER_LAUNCHED"
"""Set by `agent-tracer train --num-processes` in its processes: the parent prints the outcome."""
DEFAULT_PORT = 29500


@dataclass
class LaunchConfig:
    """How many processes train, and where: the flags `agent-tracer train` passes to Accelerate."""

    num_processes: int = field(
        default=1,
        metadata={
            "help": "Training processes in all (one per GPU; on a CPU, each takes a share of the cores). "
            "Above 1, Accelerate's launcher starts them.",
            "type": click.IntRange(min=1),
        },
    )
    num_machines: int = field(
        default=1,
        metadata={
            "help": "Machines taking part; run the same command on each, with its --machine-rank.",
            "type": click.IntRange(min=1),
        },
    )
    machine_rank: int = field(
        default=0,
        metadata={
            "help": "This machine's rank, 0 to num-machines - 1 (0: the main one).",
            "type": click.IntRange(min=0),
        },
    )
    main_process_ip: str | None = field(
        default=None, metadata={"help": "Address of machine 0, which the others connect to (several machines)."}
    )
    main_process_port: int | None = field(
        default=None,
        metadata={
            "help": f"Port on machine 0 for the processes to meet on (default {DEFAULT_PORT}).",
            "type": click.IntRange(min=1, max=65535),
        },
    )
    distributed: str | None = field(
        default=None,
        metadata={
            "help": "How the model is spread over the processes: ddp (a copy each; the default), fsdp, "
            "zero2, zero3, zero3-offload, or your own Accelerate YAML or DeepSpeed JSON file. "
            "`agent-tracer train presets` lists them."
        },
    )

    @property
    def wanted(self) -> bool:
        """Whether this command starts several processes (rather than training here)."""
        return self.num_processes > 1 or self.num_machines > 1


STRATEGIES = {
    "ddp": "a full copy of the model in each process, gradients averaged (the default; any device)",
    "fsdp": "FSDP2: weights, gradients and optimiser state sharded, wrapped per decoder layer",
    "zero2": "DeepSpeed ZeRO-2: optimiser state and gradients sharded, bf16 (GPUs)",
    "zero3": "DeepSpeed ZeRO-3: weights sharded too, for models one GPU cannot hold (GPUs)",
    "zero3-offload": "DeepSpeed ZeRO-3 with weights and optimiser state in CPU memory (GPUs)",
}
"""What `--distributed` offers, as `agent-tracer train presets` lists it."""


def strategies() -> dict[str, Path | None]:
    """Shipped strategy name → its file (an Accelerate YAML, a DeepSpeed JSON; ddp needs none)."""
    folder = Path(str(resources.files("trainer.train") / "presets" / "distributed"))
    files = {item.stem: item for item in folder.iterdir() if item.suffix in (".yaml", ".json")}
    return {name: files.get(name) for name in STRATEGIES}


def strategy_file(name: str | None) -> tuple[Path | None, str]:
    """The file of a strategy name or of a user's file, and its kind: ddp, fsdp or deepspeed (a
    DeepSpeed JSON file, or an Accelerate YAML file that names DeepSpeed)."""
    shipped = strategies()
    if name is None or name == "ddp":
        return None, "ddp"
    path = shipped.get(name) or Path(name)
    if not path.is_file():
        raise ConfigError(f"--distributed {name}: neither a strategy ({', '.join(shipped)}) nor a file")
    if path.suffix == ".json":
        return path, "deepspeed"
    text = path.read_text(encoding="utf-8", errors="replace")
    return path, "deepspeed" if "DEEPSPEED" in text else "fsdp" if "FSDP" in text else "ddp"


def devices() -> tuple[int, str]:
    """What one machine can give a process each: its GPUs, else its CPU cores."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count(), "GPU"
    return os.cpu_count() or 1, "CPU core"


def check(launch: LaunchConfig, *, load_in_4bit: bool = False) -> tuple[Path | None, str]:
    """Everything that can be wrong before a process starts, each a one-line `ConfigError`.
    Returns the strategy's file and kind."""
    if launch.num_processes % launch.num_machines:
        raise ConfigError(
            f"--num-processes {launch.num_processes} counts every machine's processes: it must be a multiple "
            f"of --num-machines {launch.num_machines}"
        )
    if launch.machine_rank >= launch.num_machines:
        raise ConfigError(f"--machine-rank {launch.machine_rank} must be below --num-machines {launch.num_machines}")
    if launch.num_machines > 1 and not launch.main_process_ip:
        raise ConfigError("several machines need --main-process-ip: the address of machine 0")
    here = launch.num_processes // launch.num_machines
    count, unit = devices()
    if here > count:
        raise ConfigError(
            f"{here} processes on this machine, but it has {count} {unit}{'s' if count != 1 else ''}: "
            f"lower --num-processes"
        )
    path, kind = strategy_file(launch.distributed)
    gpu = unit == "GPU"
    if kind == "deepspeed":
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(
                f"--distributed {launch.distributed} needs DeepSpeed: pip install deepspeed (or --distributed ddp|fsdp)"
            )
        if not gpu:
            raise ConfigError(f"--distributed {launch.distributed}: DeepSpeed ZeRO runs on GPUs, this machine has none")
    if kind == "fsdp" and not gpu:  # Accelerate makes CPU process groups MULTI_CPU, never FSDP: nothing would shard
        raise ConfigError(
            f"--distributed {launch.distributed}: Accelerate shards with FSDP on GPUs only; on CPU processes "
            "use --distributed ddp"
        )
    if load_in_4bit and kind != "ddp":
        raise ConfigError("--load-in-4bit (QLoRA) trains with --distributed ddp only: 4-bit weights are not sharded")
    if launch.machine_rank == 0:
        port_free(launch.main_process_ip or "127.0.0.1", launch.main_process_port or DEFAULT_PORT)
    return path, kind


def port_free(host: str, port: int) -> None:
    """A `ConfigError` when the processes' meeting port is taken on this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("" if host not in ("127.0.0.1", "localhost") else host, port))
        except OSError:
            raise ConfigError(f"port {port} is in use: choose another with --main-process-port") from None


def command(launch: LaunchConfig, path: Path | None, kind: str, entry: list[str]) -> list[str]:
    """The `accelerate launch` command line that starts the processes of `entry` (the arguments of
    `python -m trainer.commands.train`)."""
    line = [sys.executable, "-m", "accelerate.commands.launch"]
    if path is not None and path.suffix != ".json":
        line += ["--config_file", str(path)]  # a YAML file: Accelerate's own, taken as it is
    elif path is not None:
        line += ["--use_deepspeed", "--deepspeed_config_file", str(path), "--mixed_precision", "no"]
    else:
        line += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    line += ["--num_processes", str(launch.num_processes), "--num_machines", str(launch.num_machines)]
    line += ["--machine_rank", str(launch.machine_rank)]
    line += ["--main_process_port", str(launch.main_process_port or DEFAULT_PORT)]
    if launch.main_process_ip:
        line += ["--main_process_ip", launch.main_process_ip]
    return [*line, "-m", "trainer.commands.train", *entry]


def run(launch: LaunchConfig, path: Path | None, kind: str, entry: list[str]) -> None:
    """Start the processes and wait for them; a `TrainingError` when one of them failed."""
    from trainer.train.run import TrainingError

    env = {**os.environ, LAUNCHED_ENV: "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    returned = subprocess.run(command(launch, path, kind, entry), env=env).returncode
    if returned:
        how = f"killed by signal {-returned}" if returned < 0 else f"exit code {returned}"
        raise TrainingError(
            f"training stopped ({how}): a process failed and the launcher stopped the others (its error is "
            "above); --resume continues from the last checkpoint"
        )


def launched() -> bool:
    """Whether this process is one of several a launcher started (torchrun, accelerate, srun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launched_by_us() -> bool:
    return os.environ.get(LAUNCHED_ENV) == "1"


def state(cpu: bool) -> Any:
    """Accelerate's process state (the process group made on first use: gloo on a CPU)."""
    from accelerate import PartialState

    return PartialState(cpu=cpu)


def is_main() -> bool:
    """Whether this is the process that writes the run folder (always, in a single process)."""
    if not launched():
        return True
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    if launched():
        from accelerate import PartialState

        PartialState().wait_for_everyone()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first, the others after it (a cache it fills, they read)."""
    if not launched():
        yield
        return
    from accelerate import PartialState

    with PartialState().main_process_first():
        yield


def strategy_name(distributed_type: Any) -> str:
    """What a run's summary calls Accelerate's distributed type: ddp, fsdp, deepspeed, or single."""
    value = str(getattr(distributed_type, "value", distributed_type)).upper()
    return {"FSDP": "fsdp", "DEEPSPEED": "deepspeed", "NO": "single"}.get(
        value, "ddp" if "MULTI" in value else value.lower()
    )


def local_rank() -> int:
    """This process's index on its machine (its GPU)."""
    return int(os.environ.get("LOCAL_RANK", "0"))
