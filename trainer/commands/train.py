"""`agent-tracer train sft|dpo|reward|grpo|merge|presets`: a fine-tuned model from a dataset file.

    agent-tracer train sft    --data sft.jsonl --model smollm2 --out runs/sft      [--config sft.yaml]
    agent-tracer train dpo    --data dpo.jsonl --model runs/sft --out runs/dpo
    agent-tracer train reward --data reward.jsonl --model smollm2 --out runs/rm
    agent-tracer train grpo   --data prompts.jsonl --model runs/sft --reward tool-match --out runs/grpo
    agent-tracer train merge  runs/dpo --out runs/merged
    agent-tracer train presets [--show sft-cpu]

The same commands run as `python -m trainer.commands.train sft …`: the entry point each process of
a several-process run executes (`--num-processes` starts them through Accelerate), and what
`accelerate launch -m …` or `torchrun -m …` takes where a scheduler starts the processes itself.

Every setting of a run is a flag made from its config dataclass (`trainer/train/config.py`), over
a `--config` YAML file, over a preset: by default the kind's GPU preset on a machine with a GPU and
its `-cpu` preset elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from agent_tracer.console import config_options
from trainer.train.config import CONFIGS, default_preset, preset_values, presets, read_yaml, resolve
from trainer.train.launch import LaunchConfig


def _preset_defaults(kind: str) -> Callable[[dataclasses.Field[Any]], str]:
    """What the help says a run gets without a flag: every flag defaults to None, so that one given
    on the command line wins over the config file and the preset, and an absent one leaves them be."""
    shipped = presets()
    layers = {name: preset_values(name) for name in (kind, f"{kind}-cpu") if name in shipped}
    return lambda spec: _default_text(spec, layers)


def _default_text(spec: dataclasses.Field[Any], layers: dict[str, dict[str, Any]]) -> str:
    """What a run gets without the flag: the default preset's value where one sets it (the GPU
    preset's and the CPU preset's when they differ), else the config's own default."""

    def text(value: Any) -> str:
        return ",".join(value) if isinstance(value, list) else "" if value is None else str(value)

    own = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
    values = {name: text(values.get(spec.name, own)) for name, values in layers.items()}
    if len(set(values.values())) > 1:
        return ", ".join(
            f"{value} ({'preset ' if not index else ''}{name})" for index, (name, value) in enumerate(values.items())
        )
    return next(iter(values.values()), text(own))


def _run_command(kind: str) -> click.Command:
    config_class = CONFIGS[kind]

    @click.command(kind, help=(config_class.__doc__ or "").strip() + "\n\nPresets: `agent-tracer train presets`.")
    @click.option("--preset", help=f"Start from this shipped preset (default: {kind} with a GPU, {kind}-cpu without).")
    @click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False),
        help="YAML file of settings, over the preset; flags win over both.",
    )
    @click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
    @click.option("--overwrite", is_flag=True, help="Replace a finished or broken run in --out.")
    @click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
    @config_options(config_class, layered=_preset_defaults(kind))
    @config_options(LaunchConfig)
    def command(
        preset: str | None, config_file: str | None, resume: bool, overwrite: bool, as_json: bool, **flags: Any
    ) -> None:
        from agent_tracer.errors import AgentTracerError
        from trainer.train import launch

        spread = LaunchConfig(**{name: flags.pop(name) for name in LAUNCH_FIELDS})
        try:
            config = _resolved(kind, preset, config_file, flags)
            if spread.wanted and not launch.launched():
                summary = _launch(config, spread, resume=resume, overwrite=overwrite)
            else:
                with contextlib.redirect_stdout(sys.stderr):  # the trainers' logs: stdout is the outcome's alone
                    summary = _train(config, resume=resume, overwrite=overwrite)
                if launch.launched_by_us() or not launch.is_main():
                    return  # `agent-tracer train --num-processes` prints it, once
        except AgentTracerError as exc:
            raise click.ClickException(str(exc)) from None
        if not summary:  # another machine than the main one: the run folder is there
            click.echo(f"machine {spread.machine_rank}'s processes finished; the run is in {config.out} on machine 0")
            return
        click.echo(json.dumps(summary, indent=2) if as_json else _render(kind, config.out, summary))

    return command


LAUNCH_FIELDS = [spec.name for spec in dataclasses.fields(LaunchConfig)]


def _launch(config: Any, spread: LaunchConfig, *, resume: bool, overwrite: bool) -> dict[str, Any]:
    """Check everything a process would find wrong first (the launch, the hardware settings, the
    rows, the run folder), then start the processes through Accelerate with the resolved config,
    and return the run's outcome from run.json."""
    import tempfile
    from pathlib import Path

    import yaml

    from trainer.train import inputs, launch
    from trainer.train.config import to_dict
    from trainer.train.run import Hardware, check_folder

    path, strategy = launch.check(spread, load_in_4bit=config.load_in_4bit)
    Hardware.detect(config)
    inputs.load(config, config.kind)
    if spread.machine_rank == 0:
        check_folder(config, resume, overwrite)
    with tempfile.TemporaryDirectory(prefix="agent-tracer-launch-") as folder:
        resolved = Path(folder) / f"{config.kind}.yaml"
        resolved.write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
        entry = [config.kind, "--config", str(resolved), *(["--resume"] if resume else [])]
        entry += ["--overwrite"] if overwrite else []
        click.echo(
            f"starting {spread.num_processes} training processes ({strategy}) on {spread.num_machines} "
            f"machine{'s' if spread.num_machines > 1 else ''}",
            err=True,
        )
        launch.run(spread, path, strategy, entry)
    if spread.machine_rank:
        return {}
    return json.loads((Path(config.out) / "run.json").read_text(encoding="utf-8"))


def _resolved(kind: str, preset: str | None, config_file: str | None, flags: dict[str, Any]) -> Any:
    from trainer.train import launch
    from trainer.train.run import gpu_available

    name = preset or default_preset(kind, gpu_available())
    layers = [
        preset_values(name) if name else {},
        read_yaml(config_file) if config_file else {},
        {key: value for key, value in flags.items() if value is not None},
    ]
    if name and not preset and not launch.launched():
        click.echo(f"preset: {name} (--preset to choose another)", err=True)
    return resolve(kind, *layers)


def _train(config: Any, **kwargs: Any) -> dict[str, Any]:
    """Run the training of `config.kind` (its module imported only now: torch comes with it)."""
    from trainer.train import grpo, preference, sft

    functions: dict[str, Callable[..., dict[str, Any]]] = {
        "sft": sft.train_sft,
        "dpo": preference.train_dpo,
        "reward": preference.train_reward,
        "grpo": grpo.train_grpo,
    }
    return functions[config.kind](config, **kwargs)


def _render(kind: str, out: str, summary: dict[str, Any]) -> str:
    def number(value: Any, form: str) -> str:
        return "-" if value is None else format(value, form)

    lines = [
        f"{kind} run in {out}: {summary['steps']} steps, {number(summary['epochs'], '.2f')} epochs, "
        f"{summary['seconds']:.0f} s",
        f"  train loss {number(summary['train_loss'], '.4f')}, eval loss {number(summary['eval_loss'], '.4f')}",
        f"  {summary['tokens']:,} tokens, {number(summary['tokens_per_second'], ',.0f')} tokens/s",
    ]
    if summary.get("processes", 1) > 1:
        lines.append(
            f"  {summary['processes']} processes ({summary['strategy']}), global batch {summary['global_batch_size']}"
        )
    if summary.get("rows_cut"):
        lines.append(
            f"  {summary['rows_cut']:,} rows were longer than --max-length and lost their ends: raise it, "
            "or build the data with `agent-tracer dataset sft --max-length`, which drops old turns instead"
        )
    if summary.get("peak_gpu_memory_gb") is not None:
        lines.append(f"  peak GPU memory {summary['peak_gpu_memory_gb']} GB")
    lines.append(f"  adapter, tokenizer, config.yaml, metrics.jsonl and run.json in {out}")
    return "\n".join(lines)


@click.group()
def train() -> None:
    """Fine-tune a model on a dataset file: SFT, DPO, a reward model or GRPO, with LoRA (TRL + PEFT)."""


for _kind in CONFIGS:
    train.add_command(_run_command(_kind))


@train.command("merge")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the merged model.")
@click.option("--overwrite", is_flag=True, help="Replace what is in --out.")
def merge(run: str, out: str, overwrite: bool) -> None:
    """Fold RUN's LoRA adapter into its base: full safetensors weights that transformers and vLLM load."""
    from agent_tracer.errors import AgentTracerError
    from trainer.train.merge import merge as merge_run

    try:
        written = merge_run(run, out, overwrite=overwrite)
    except AgentTracerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"merged {written['run']} ({written['kind']}, base {written['base']}) into {written['out']}: "
        f"{written['parameters']:,} parameters, {written['safetensors_mb']} MB of safetensors"
    )


@train.command("presets")
@click.option("--show", metavar="NAME", help="Print one preset's YAML (a starting point for --config).")
def list_presets(show: str | None) -> None:
    """The shipped presets: what each is for, and its main settings."""
    from trainer.train.launch import STRATEGIES, strategies

    files = presets()
    spreads = strategies()
    if show:
        found = files.get(show) or spreads.get(show)
        if show == "ddp":
            raise click.ClickException("ddp needs no file: it is Accelerate's default for several processes")
        if found is None:
            raise click.ClickException(
                f"no preset {show!r}; the presets are: {', '.join(sorted(files))}; "
                f"the strategies: {', '.join(name for name in spreads if spreads[name])}"
            )
        click.echo(found.read_text(encoding="utf-8"), nl=False)
        return
    for name in sorted(files):
        values = preset_values(name)
        about = next(
            (line[2:] for line in files[name].read_text(encoding="utf-8").splitlines() if line.startswith("# ")), ""
        )
        keys = ("model", "lora_r", "learning_rate", "epochs", "max_steps", "batch_size", "grad_accum", "max_length")
        settings = ", ".join(f"{key} {values[key]}" for key in keys if key in values)
        click.echo(f"{name:<11} {values.get('kind', '?'):<6} {about}\n{'':18}{settings}")
    click.echo("\nStrategies for --distributed (with --num-processes; --show NAME prints the file):")
    for name, about in STRATEGIES.items():
        click.echo(f"{name:<14} {about}")


if __name__ == "__main__":  # each training process of a several-process run (trainer/train/launch.py)
    train(prog_name="python -m trainer.commands.train")
