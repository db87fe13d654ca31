"""`pcatools train`: train one network with one loss, from a YAML config and/or options."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import types
import typing
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import typer
import yaml

from pcatools.data.manifest import read_manifest
from pcatools.data.splits import PAPER_FRACTIONS, make_splits
from pcatools.loss_registry import loss_help, loss_name
from pcatools.network_registry import network_name
from pcatools.specs import SpecError
from pcatools.training.config import TrainConfig, parse_triple, setting_help
from pcatools.training.run_files import RunBusyError

NAME = "train"

#: Keys a config file may hold besides the training settings (:class:`~pcatools.training.config.TrainConfig`):
#: where the data and the run are, and the device.
DATA_KEYS = ("data_dir", "manifest", "run_dir", "split_fractions", "split_seed", "layout", "device")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["init_filters=8", "channels=[8,16,32]"]`` -> ``{"init_filters": 8, "channels": [8, 16, 32]}`` (YAML values).

    Examples
    --------
    >>> parse_overrides(["init_filters=8", "norm=batch"])
    {'init_filters': 8, 'norm': 'batch'}
    """
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
    manifest, data_dir = settings.get("manifest"), settings.get("data_dir")
    if manifest is None and data_dir is None:
        raise typer.BadParameter(
            "give --manifest (a split CSV) or --data-dir (a dataset to discover and split)"
        )
    if manifest is not None:
        table = read_manifest(manifest)
    else:
        from pcatools.data.discovery import discover_cases  # deferred: start-up (see tests/test_imports.py)

        table = discover_cases(str(data_dir), layout=settings.get("layout") or "auto", progress=progress)
    if "split" in table:
        return table
    fractions = tuple(settings.get("split_fractions") or PAPER_FRACTIONS)
    return make_splits(
        pd.DataFrame(table),
        fractions=fractions,
        seed=int(settings.get("split_seed", settings.get("seed", 0)) or 0),
    )


def _command_options(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML config (keys: the training settings of pcatools.training.TrainConfig, data_dir, manifest, "
        "run_dir, split_fractions, split_seed, layout, device). Options given on the command line win.",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Dataset (autoPET / nnU-Net / flat): discovered and split by patient."
    ),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="Manifest CSV; split by patient unless it has a 'split' column."
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run folder (default runs/<model>__<loss>)."),
    resume: str | None = typer.Option(
        None,
        help="yes (default: continue from last.pt, or from last.prev.pt where last.pt is gone), no (start over; "
        "the earlier run's files move to RUN_DIR/replaced/<time>/), prev (continue from last.prev.pt) or a "
        "checkpoint path.",
    ),
    max_epochs_this_call: int | None = typer.Option(None, help="Stop after this many epochs (resume later)."),
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
    device: str | None = typer.Option(
        None, help="cpu, cuda, cuda:1 (default: CUDA if available; cuda:LOCAL_RANK under torchrun)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
) -> None:
    """The options of ``pcatools train`` that are not training settings (only its signature is used)."""


NO_OPTION = ("in_channels", "out_channels", "tensorboard")
"""Training settings without an option: the channels follow the data (CT and PET in, background and
lesion out) and a run from the command line always writes TensorBoard events; a config file may set them."""

_MORE_NAMES = {"model": ("--network",)}


def _setting_options() -> dict[str, tuple[Any, Any]]:
    """``{parameter: (annotation, typer.Option)}`` of every training setting but :data:`NO_OPTION`, from
    :class:`~pcatools.training.config.TrainConfig`'s fields: name, type and their one description.

    A mapping setting ``X_overrides`` is a repeatable ``--X-override KEY=VALUE``; a triple is text
    (``128`` or ``128,128,96``); a flag is ``--name/--no-name``; every option defaults to the config
    file's value or the setting's default (``None``: not given).
    """
    hints = typing.get_type_hints(TrainConfig)
    out: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in NO_OPTION:
            continue
        (kind, _), flag = _value_type(hints[f.name]), "--" + f.name.replace("_", "-")
        text = setting_help(f.name) + (f" Registered: {loss_help()}" if f.name == "loss" else "")
        if kind is dict:
            name = f.name.removesuffix("s")
            decl = "--" + name.replace("_", "-")
            out[name] = (list[str] | None, typer.Option(None, decl, help=f"KEY=VALUE (repeatable): {text}"))
        elif kind is bool:
            out[f.name] = (bool | None, typer.Option(None, f"{flag}/--no-{flag[2:]}", help=text))
        else:
            cli_type = str if kind is tuple else kind
            out[f.name] = (cli_type | None, typer.Option(None, flag, *_MORE_NAMES.get(f.name, ()), help=text))
    return out


def _value_type(hint: Any) -> tuple[type, Any]:
    """The kind of a setting's value (``int``, ``float``, ``str``, ``bool``, ``tuple``, ``dict``), ``None``
    aside, and the type of its items (a triple's ``int`` or ``float``; ``None`` for a scalar)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    core = args[0] if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else hint
    items = typing.get_args(core)
    return typing.get_origin(core) or core, items[0] if items else None


def _given_settings(options: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (a config file's) with the setting options given on top; mapping options are merged
    key by key, triples parsed (a bad one is a bad option)."""
    hints = typing.get_type_hints(TrainConfig)
    out = dict(settings)
    for f in dataclasses.fields(TrainConfig):
        if f.name in NO_OPTION:
            continue
        kind, item = _value_type(hints[f.name])
        if kind is dict:
            if items := options.get(f.name.removesuffix("s")):
                out[f.name] = {**dict(out.get(f.name) or {}), **parse_overrides(items)}
        elif (value := options.get(f.name)) is not None:
            out[f.name] = value
        if kind is tuple and out.get(f.name) is not None:
            try:
                out[f.name] = parse_triple(out[f.name], item, f.name)
            except ValueError as err:
                raise typer.BadParameter(str(err)) from None
    return out


def run(**options: Any) -> None:
    """Train a network (paper 2.5): AdamW, cosine annealing, sliding-window validation DSC, best/last checkpoints.

    Settings come from --config (YAML), then the options given. Re-running the same command
    resumes from the run folder's last checkpoint. Several GPUs: torchrun --nproc_per_node=N
    -m pcatools.cli train --config configs/paper_segresnet_l1dfl.yaml
    """
    from pcatools.training import CheckpointError, train  # deferred: start-up (see tests/test_imports.py)

    try:
        config = options["config"]
        settings = _given_settings(options, load_config(config) if config is not None else {})
        for key in ("data_dir", "manifest", "run_dir", "max_epochs_this_call", "device"):
            if options[key] is not None:
                settings[key] = options[key]
        if options["loss_option"]:
            settings["loss_overrides"] = {
                **dict(settings.get("loss_overrides") or {}),
                **loss_options(options["loss_option"], str(settings.get("loss", "l1dfl"))),
            }
        if options["network_option"]:
            settings["model_overrides"] = {
                **dict(settings.get("model_overrides") or {}),
                **loss_options(options["network_option"], str(settings.get("model", "segresnet")), "network"),
            }
        resumed: bool | str = True
        if (resume := options["resume"]) is not None:
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

        table = prepare_manifest(settings, options["progress"])
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
            progress=options["progress"],
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


def _signature() -> inspect.Signature:
    """``run``'s options for typer: :func:`_command_options`'s, then one per training setting."""
    own = list(inspect.signature(_command_options).parameters.values())
    settings = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        for name, (annotation, option) in _setting_options().items()
    ]
    return inspect.Signature([*own, *settings], return_annotation=None)


run.__signature__ = _signature()  # type: ignore[attr-defined]
run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}  # type: ignore[attr-defined]


def _fail(message: str, code: int = 1) -> NoReturn:
    """Print one ``error:`` line and exit (1: the data or the run failed; 2: a bad option or config file)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)
