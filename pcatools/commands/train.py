"""`pcatools train`: train one network with one loss, from a YAML config and/or options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import typer

from pcatools.loss_registry import loss_help, loss_name
from pcatools.network_registry import network_name
from pcatools.specs import SpecError
from pcatools.training.config import TrainConfig, setting_help

NAME = "train"

#: Keys a config file may hold besides the training settings (:class:`~pcatools.training.config.TrainConfig`):
#: where the data and the run are, and the device.
DATA_KEYS = ("data_dir", "manifest", "run_dir", "split_fractions", "split_seed", "layout", "device")


def parse_triple(text: str | list[Any] | tuple[Any, ...], kind: type, name: str) -> tuple[Any, Any, Any]:
    """``"128"`` -> ``(128, 128, 128)``; ``"128,128,96"`` or ``[128, 128, 96]`` -> that triple.

    Examples
    --------
    >>> parse_triple("2", float, "spacing"), parse_triple("96,96,64", int, "patch_size")
    ((2.0, 2.0, 2.0), (96, 96, 64))
    """
    parts = (
        list(text)
        if isinstance(text, list | tuple)
        else [p for p in str(text).replace("x", ",").split(",") if p.strip()]
    )
    try:
        values = [kind(float(p)) if kind is int else kind(p) for p in parts]
    except ValueError as err:
        raise typer.BadParameter(f"{name}: expected 1 or 3 numbers, found {text!r}") from err
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise typer.BadParameter(f"{name}: expected 1 or 3 numbers, found {text!r}")
    return tuple(values)  # type: ignore[return-value]


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["init_filters=8", "channels=[8,16,32]"]`` -> ``{"init_filters": 8, "channels": [8, 16, 32]}`` (YAML values).

    Examples
    --------
    >>> parse_overrides(["init_filters=8", "norm=batch"])
    {'init_filters': 8, 'norm': 'batch'}
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"expected KEY=VALUE, found {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def loss_options(items: list[str], trained: str, what: str = "loss") -> dict[str, Any]:
    """``["tversky.alpha=0.3"]`` -> ``{"alpha": 0.3}`` for the loss ``trained`` (YAML values); another NAME is refused.

    ``what="network"`` reads ``--network-option`` the same way (``unet.channels=[4,8]`` for network ``UNet``).

    Examples
    --------
    >>> loss_options(["tversky.alpha=0.3"], "tversky=my_losses.py:TverskyLoss")
    {'alpha': 0.3}
    >>> loss_options(["unet.channels=[4,8]"], "UNet", "network")
    {'channels': [4, 8]}
    """
    named = loss_name if what == "loss" else network_name
    out: dict[str, Any] = {}
    for item in items:
        name, dot, rest = item.partition(".")
        if not dot or "=" not in rest:
            raise typer.BadParameter(f"--{what}-option: expected NAME.KEY=VALUE, found {item!r}")
        if named(name) != named(trained):
            raise typer.BadParameter(
                f"--{what}-option {item}: this run trains {what} {named(trained)!r}, not {name!r}"
            )
        out.update(parse_overrides([rest]))
    return out


def load_config(path: Path) -> dict[str, Any]:
    """Read a training config (YAML mapping of training settings and :data:`DATA_KEYS`); check it.

    Every key that is not one of :data:`DATA_KEYS` must be a
    :class:`~pcatools.training.config.TrainConfig` setting with a valid value (an error names the
    file and the key). Relative paths in it (``data_dir``, ``manifest``, ``run_dir``) are relative
    to the working directory, as on the command line.
    """
    import yaml

    from pcatools.training.config import TrainConfig

    if not path.is_file():
        raise typer.BadParameter(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark, opened = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        if context and opened is not None:  # e.g. where an unclosed bracket was opened
            problem += f", {context} at line {opened.line + 1}"
        raise typer.BadParameter(f"config {path}{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"config {path}: expected a YAML mapping, found {type(data).__name__}")
    try:
        TrainConfig.from_dict({k: v for k, v in data.items() if k not in DATA_KEYS}, where=f"config {path}")
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    return data


def prepare_manifest(settings: dict[str, Any], progress: bool) -> Any:
    """The split manifest: a CSV with ``split``, or cases discovered in ``data_dir`` and split by patient."""
    import pandas as pd

    from pcatools.training import read_manifest

    manifest, data_dir = settings.get("manifest"), settings.get("data_dir")
    if manifest is None and data_dir is None:
        raise typer.BadParameter(
            "give --manifest (a split CSV) or --data-dir (a dataset to discover and split)"
        )
    if manifest is not None:
        table = read_manifest(manifest)
    else:
        from pcatools.data.discovery import discover_cases

        table = discover_cases(str(data_dir), layout=settings.get("layout") or "auto", progress=progress)
    if "split" in table:
        return table
    from pcatools.data.splits import PAPER_FRACTIONS, make_splits

    fractions = tuple(settings.get("split_fractions") or PAPER_FRACTIONS)
    return make_splits(
        pd.DataFrame(table),
        fractions=fractions,
        seed=int(settings.get("split_seed", settings.get("seed", 0)) or 0),
    )


def run(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML config (keys: the training settings of pcatools.training.TrainConfig, data_dir, manifest, run_dir, split_fractions, split_seed, layout, device). Options given on the command line win.",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Dataset (autoPET / nnU-Net / flat): discovered and split by patient."
    ),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="Manifest CSV; split by patient unless it has a 'split' column."
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run folder (default runs/<model>__<loss>)."),
    model: str | None = typer.Option(None, "--model", "--network", help=setting_help("model")),
    loss: str | None = typer.Option(None, help=f"{setting_help('loss')} Registered: {loss_help()}"),
    epochs: int | None = typer.Option(None, help=setting_help("epochs")),
    batch_size: int | None = typer.Option(None, help=setting_help("batch_size")),
    lr: float | None = typer.Option(None, help=setting_help("lr")),
    warmup_epochs: int | None = typer.Option(None, help=setting_help("warmup_epochs")),
    weight_decay: float | None = typer.Option(None, help=setting_help("weight_decay")),
    patch_size: str | None = typer.Option(None, help=setting_help("patch_size")),
    spacing: str | None = typer.Option(None, help=setting_help("spacing")),
    val_every: int | None = typer.Option(None, help=setting_help("val_every")),
    num_samples: int | None = typer.Option(None, help=setting_help("num_samples")),
    seed: int | None = typer.Option(None, help=setting_help("seed")),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help=setting_help("amp")),
    workers: int | None = typer.Option(None, help=setting_help("workers")),
    threads: int | None = typer.Option(None, help=setting_help("threads")),
    cache_rate: float | None = typer.Option(None, help=setting_help("cache_rate")),
    roi_size: str | None = typer.Option(None, help=setting_help("roi_size")),
    sw_batch_size: int | None = typer.Option(None, help=setting_help("sw_batch_size")),
    overlap: float | None = typer.Option(None, help=setting_help("overlap")),
    mode: str | None = typer.Option(None, help=setting_help("mode")),
    resume: str | None = typer.Option(
        None,
        help="yes (default: continue from last.pt, or from last.prev.pt where last.pt is gone), no (start over; "
        "the earlier run's files move to RUN_DIR/replaced/<time>/), prev (continue from last.prev.pt) or a checkpoint path.",
    ),
    max_steps_per_epoch: int | None = typer.Option(None, help=setting_help("max_steps_per_epoch")),
    max_epochs_this_call: int | None = typer.Option(None, help="Stop after this many epochs (resume later)."),
    model_override: list[str] | None = typer.Option(
        None, "--model-override", help="KEY=VALUE (repeatable): " + setting_help("model_overrides")
    ),
    loss_override: list[str] | None = typer.Option(
        None, "--loss-override", help="KEY=VALUE (repeatable): " + setting_help("loss_overrides")
    ),
    loss_option: list[str] | None = typer.Option(
        None,
        "--loss-option",
        help="NAME.KEY=VALUE (repeatable) for loss NAME (the one trained), e.g. tversky.alpha=0.3: "
        + setting_help("loss_overrides"),
    ),
    network_option: list[str] | None = typer.Option(
        None,
        "--network-option",
        help="NAME.KEY=VALUE (repeatable) for network NAME (the one trained), e.g. unet.channels=[4,8,16]: "
        + setting_help("model_overrides"),
    ),
    transform_override: list[str] | None = typer.Option(
        None,
        "--transform-override",
        help="KEY=VALUE (repeatable): " + setting_help("transform_overrides"),
    ),
    device: str | None = typer.Option(
        None, help="cpu, cuda, cuda:1 (default: CUDA if available; cuda:LOCAL_RANK under torchrun)."
    ),
    deterministic: bool | None = typer.Option(
        None, "--deterministic/--no-deterministic", help=setting_help("deterministic")
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
) -> None:
    """Train a network (paper 2.5): AdamW, cosine annealing, sliding-window validation DSC, best/last checkpoints.

    Settings come from --config (YAML), then the options given. Re-running the same command
    resumes from the run folder's last checkpoint. Several GPUs: torchrun --nproc_per_node=N
    -m pcatools.cli train --config configs/paper_segresnet_l1dfl.yaml
    """
    import logging

    from pcatools.training import CheckpointError, train
    from pcatools.training.run_files import RunBusyError

    try:
        settings: dict[str, Any] = load_config(config) if config is not None else {}
        given = {
            "data_dir": data_dir,
            "manifest": manifest,
            "run_dir": run_dir,
            "model": model,
            "loss": loss,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "warmup_epochs": warmup_epochs,
            "weight_decay": weight_decay,
            "val_every": val_every,
            "num_samples": num_samples,
            "seed": seed,
            "amp": amp,
            "workers": workers,
            "threads": threads,
            "cache_rate": cache_rate,
            "sw_batch_size": sw_batch_size,
            "overlap": overlap,
            "mode": mode,
            "max_steps_per_epoch": max_steps_per_epoch,
            "max_epochs_this_call": max_epochs_this_call,
            "device": device,
            "deterministic": deterministic,
        }
        settings.update({k: v for k, v in given.items() if v is not None})
        if patch_size is not None:
            settings["patch_size"] = patch_size
        if spacing is not None:
            settings["spacing"] = spacing
        if roi_size is not None:
            settings["roi_size"] = roi_size
        if settings.get("roi_size") is not None:
            settings["roi_size"] = parse_triple(settings["roi_size"], int, "roi_size")
        if "patch_size" in settings:
            settings["patch_size"] = parse_triple(settings["patch_size"], int, "patch_size")
        if "spacing" in settings:
            settings["spacing"] = parse_triple(settings["spacing"], float, "spacing")
        for key, items in (
            ("model_overrides", model_override),
            ("loss_overrides", loss_override),
            ("transform_overrides", transform_override),
        ):
            if items:
                settings[key] = {**dict(settings.get(key) or {}), **parse_overrides(items)}
        if loss_option:
            settings["loss_overrides"] = {
                **dict(settings.get("loss_overrides") or {}),
                **loss_options(loss_option, str(settings.get("loss", "l1dfl"))),
            }
        if network_option:
            settings["model_overrides"] = {
                **dict(settings.get("model_overrides") or {}),
                **loss_options(network_option, str(settings.get("model", "segresnet")), "network"),
            }
        resumed: bool | str = True
        if resume is not None:
            resumed = {"yes": True, "true": True, "no": False, "false": False}.get(resume.lower(), resume)
        run_config = TrainConfig.from_dict(
            {k: v for k, v in settings.items() if k not in (*DATA_KEYS, "max_epochs_this_call")},
            where="pcatools train",
        )
        try:  # network, transforms and the loss (built and tried on a small batch) before anything is written
            run_config.check_components()
        except SpecError as err:  # a loss that cannot be named, built or used: a bad option
            raise typer.BadParameter(str(err)) from None
        if settings.get("run_dir") is None:
            settings["run_dir"] = (
                Path("runs")
                / f"{network_name(str(settings.get('model', 'segresnet')))}__{loss_name(str(settings.get('loss', 'l1dfl')))}"
            )

        table = prepare_manifest(settings, progress)
    except typer.BadParameter as err:  # a bad option or config file
        _fail(err.message, code=2)
    except ValueError as err:  # a setting out of range, the dataset or the manifest: names it
        _fail(str(err))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = train(
            table,
            settings["run_dir"],
            run_config,
            resume=resumed,
            progress=progress,
            device=settings.get("device"),
            max_epochs_this_call=settings.get("max_epochs_this_call"),
        )
    except (CheckpointError, RunBusyError, ValueError, OSError, FloatingPointError) as err:
        # bad settings or data, a run folder in use or with nothing to continue from, a full disk,
        # a diverged loss: each message names the file, case or setting
        _fail(str(err))
    if int(os.environ.get("RANK", "0")) == 0:
        state = "finished" if result.completed else "stopped (resumable)"
        typer.echo(
            f"{state}: {len(result.history)} epochs in {result.run_dir}; best validation DSC "
            f"{result.best_metric:.4f} at epoch {result.best_epoch} -> {result.best_checkpoint}"
        )


def _fail(message: str, code: int = 1) -> NoReturn:
    """Print one ``error:`` line and exit (1: the data or the run failed; 2: a bad option or config file)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)
