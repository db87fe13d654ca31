"""`pcatools study`: the paper's experiment grid end to end."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import typer
import yaml

from pcatools.cell_status import MissingCellsError, format_status, study_status
from pcatools.cells import parse_cell, parse_seeds, study_cells
from pcatools.commands.train import parse_overrides
from pcatools.launcher import LAUNCHERS, launcher_options_help, parse_launcher_options
from pcatools.loss_registry import fitting_options, loss_help, loss_name, register_loss
from pcatools.network_registry import declare_network, network_name
from pcatools.specs import SpecError, is_spec, parse_spec
from pcatools.study import get_profile, run_study
from pcatools.training.run_files import RunBusyError

NAME = "study"


def study_losses(items: list[str] | None, options: list[str] | None, profile: str) -> tuple[str, ...] | None:
    """The grid's loss names: each ``NAME=SPEC`` registered (with its ``--loss-option``), each loss
    checked (:func:`pcatools.losses.check_loss`) with the profile's ``loss_overrides`` it takes."""
    from pcatools.losses import check_loss  # deferred: start-up (see tests/test_imports.py)

    per_loss: dict[str, dict[str, Any]] = {}
    for item in options or []:
        name, dot, rest = item.partition(".")
        if not dot or "=" not in rest:
            raise typer.BadParameter(f"--loss-option: expected NAME.KEY=VALUE, found {item!r}")
        per_loss.setdefault(name, {}).update(parse_overrides([rest]))
    names: list[str] = []
    for item in items or []:
        if is_spec(item):
            spec = parse_spec(item, "loss")
            register_loss(str(spec.name), spec.target, options=per_loss.pop(str(spec.name), None))
        names.append(loss_name(item))
    if per_loss:
        raise typer.BadParameter(
            f"--loss-option {sorted(per_loss)[0]}: options go to a loss given as NAME=SPEC here; "
            "for pcatools' own, register a variant (NAME=pcatools.losses.l1dfl:L1DiceFocalLoss)"
        )
    try:
        profile_options = dict(get_profile(profile).train.loss_overrides)
    except ValueError:  # an unknown profile: run_study names it
        profile_options = {}
    for name in names:
        check_loss(name, fitting_options(name, profile_options))
    return tuple(names) if names else None


def study_networks(
    items: list[str] | None, options: list[str] | None, profile: str
) -> tuple[str, ...] | None:
    """The grid's network names: each ``NAME=SPEC`` or MONAI class name registered (with its
    ``--network-option``), each network other than pcatools' own built and run once on a small
    input (:func:`pcatools.models.check_network`) with the profile's settings."""
    per_net: dict[str, dict[str, Any]] = {}
    for item in options or []:
        name, dot, rest = item.partition(".")
        if not dot or "=" not in rest:
            raise typer.BadParameter(f"--network-option: expected NAME.KEY=VALUE, found {item!r}")
        per_net.setdefault(network_name(name), {}).update(parse_overrides([rest]))
    entries = [declare_network(item, per_net.pop(network_name(item), None)) for item in items or []]
    if per_net:
        raise typer.BadParameter(
            f"--network-option {sorted(per_net)[0]}: options go to a network given with --network here"
        )
    try:
        cells = get_profile(profile)
    except ValueError:  # an unknown profile: run_study names it
        return tuple(e.name for e in entries) or None
    for entry in entries:
        if not entry.builtin:
            from pcatools.models import check_network  # deferred: start-up (see tests/test_imports.py)

            cfg = cells.train_config(entry.name, cells.losses[0])
            size = tuple(min(32, p) for p in cfg.patch_size)
            check_network(
                entry.name, cfg.model_overrides, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
                size=(size[0], size[1], size[2]), output_prior=cfg.output_prior,
            )  # fmt: skip
    return tuple(e.name for e in entries) or None


def launcher_settings(launcher: str | None, items: list[str] | None) -> dict[str, Any] | None:
    """``--launcher`` checked (a known launcher, submitit installed) and its ``--launcher-option`` typed."""
    if launcher is None:
        if items:
            raise ValueError("--launcher-option: options go to a launcher; give --launcher local or slurm")
        return None
    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher: expected one of {list(LAUNCHERS)}, found {launcher!r}")
    if importlib.util.find_spec("submitit") is None:
        raise ValueError("--launcher needs submitit: pip install 'pcatools[cluster]' (docs/cluster.md)")
    return parse_launcher_options(items or [])


def grid_cells(
    names: list[str] | None,
    profile: str,
    networks: tuple[str, ...] | None,
    losses: tuple[str, ...] | None,
    seeds: tuple[int, ...] | None,
    seed: int,
) -> list[Any] | None:
    """The cells ``--cells`` names, each checked against the grid the study runs (the networks,
    losses and seeds given, else the profile's and ``--seed``); None when none are named."""
    if not names:
        return None
    prof = get_profile(profile)
    grid = (networks or prof.networks, losses or prof.losses, seeds or (seed,))
    return [parse_cell(name, *grid) for name in names]


def study_status_text(
    run_dir: Path,
    profile: str,
    networks: tuple[str, ...] | None,
    losses: tuple[str, ...] | None,
    seeds: tuple[int, ...] | None,
    seed: int,
) -> str:
    """``--status``: each cell's state (:func:`pcatools.cell_status.format_status`). The grid is the
    one given, else the one the run folder's ``config.yaml`` records, else the profile's."""
    recorded: dict[str, Any] = {}
    if (run_dir / "config.yaml").is_file():
        recorded = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    settings = recorded.get("profile") or {}
    prof = get_profile(profile)
    study_seed = int(recorded.get("seed", seed))
    grid = study_cells(
        networks or settings.get("networks") or prof.networks,
        losses or settings.get("losses") or prof.losses,
        seeds or recorded.get("seeds") or (study_seed,),
    )
    return format_status(study_status(run_dir, grid, seed=study_seed))


def run(
    run_dir: Path = typer.Argument(
        Path("runs/demo"), help="Run folder (re-running continues where it stopped)."
    ),
    profile: str = typer.Option(
        "demo",
        help="demo (2-core CPU, minutes), paper (the paper's settings, GPUs, each loss as the public code "
        "ran it), paper-text (the same, DFL's focal term as eq. 2 reads) or ci.",
    ),
    data_dir: Path | None = typer.Option(
        None, help="autoPET / nnU-Net / flat dataset; default: synthetic cohort."
    ),
    seed: int = typer.Option(0, help="Seed of the cohort, the split and (without --seeds) training."),
    seeds: str | None = typer.Option(
        None,
        help="Training seeds, e.g. 0,1,2: every network and loss is trained once per seed on the same split "
        "(--seed keeps fixing the cohort and the split); Table 1 averages each model's per-case values over "
        "the seeds and adds their spread. Default: --seed.",
    ),
    epochs: int | None = typer.Option(None, help="Override the profile's epochs."),
    n_cases: int | None = typer.Option(None, help="Override the synthetic cohort size."),
    network: list[str] | None = typer.Option(
        None,
        help="Networks of the grid (repeatable; default the paper's two): segresnet, attention_unet, "
        "attention_unet_reference, a MONAI network by class name (UNet), or your own as NAME=SPEC "
        "(SPEC package.module:attr or path/to/file.py:attr; docs/losses.md).",
    ),
    network_option: list[str] | None = typer.Option(
        None,
        "--network-option",
        help="NAME.KEY=VALUE (repeatable): a keyword argument of network NAME (a MONAI network or your own), "
        "e.g. unet.channels=[4,8,16].",
    ),
    loss: list[str] | None = typer.Option(
        None,
        help=f"Losses of the grid (repeatable; default the paper's three): {loss_help()}",
    ),
    loss_option: list[str] | None = typer.Option(
        None,
        "--loss-option",
        help="NAME.KEY=VALUE (repeatable): a keyword argument of your loss NAME, e.g. tversky.alpha=0.3.",
    ),
    workers: int | None = typer.Option(None, help="Data-loading workers."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    restart: bool = typer.Option(
        False,
        "--restart",
        help="Start over: move the run folder's models, predictions and results to RUN_DIR/replaced/<time>/ "
        "(needed to re-run a folder with other settings).",
    ),
    launcher: str | None = typer.Option(
        None,
        help="Train each (network, loss, seed) cell as a job through submitit: slurm (sbatch, one job array) "
        "or local (processes of this machine); default: one after another in this process. "
        "Needs the cluster extra; docs/cluster.md.",
    ),
    launcher_option: list[str] | None = typer.Option(
        None,
        "--launcher-option",
        help=f"KEY=VALUE (repeatable), an option of the launcher. {launcher_options_help()}",
    ),
    cells: list[str] | None = typer.Option(
        None,
        "--cells",
        help="Train only this cell, network/loss/seed, e.g. segresnet/l1dfl/1 (repeatable), and stop there "
        "unless the grid is then complete: a job array of any scheduler can drive the grid.",
    ),
    status: bool = typer.Option(
        False,
        "--status",
        help="Print each cell's state (not started, queued, training epoch k of n, done with its best "
        "validation DSC, failed with its log's last line) and exit.",
    ),
    allow_missing: bool = typer.Option(
        False,
        "--allow-missing",
        help="Analyse the models that are done when cells are missing (failed jobs), and say so in "
        "results/table1.md, instead of refusing.",
    ),
) -> None:
    """Run the study grid (2 networks x 3 losses, each from every training seed): split, train, predict,
    evaluate, statistics, figures.

    Re-running continues where a run stopped; with other settings than the run folder holds it is
    refused (listing them) unless --restart is given.
    """
    from pcatools.training import CheckpointError  # deferred: start-up (see tests/test_imports.py)

    start = time.perf_counter()
    try:
        training_seeds = parse_seeds(seeds) if seeds is not None else None
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from None
    try:  # every loss and network registered and checked before anything is written
        losses = study_losses(loss, loss_option, profile)
        networks = study_networks(network, network_option, profile)
    except (SpecError, typer.BadParameter) as err:
        typer.echo(f"error: {err.message if isinstance(err, typer.BadParameter) else err}", err=True)
        raise typer.Exit(code=2) from None
    if status:
        typer.echo(study_status_text(run_dir, profile, networks, losses, training_seeds, seed))
        return
    try:  # the launcher and the cells checked before anything is written
        options = launcher_settings(launcher, launcher_option)
        chosen = grid_cells(cells, profile, networks, losses, training_seeds, seed)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from None
    try:
        result = run_study(
            run_dir,
            profile=profile,
            data_dir=data_dir,
            seed=seed,
            seeds=training_seeds,
            progress=progress,
            restart=restart,
            epochs=epochs,
            n_cases=n_cases,
            networks=networks,
            losses=losses,
            workers=workers,
            cells=chosen,
            launcher=launcher,
            launcher_options=options,
            allow_missing=allow_missing,
        )
    except MissingCellsError as err:
        # --cells: the named cells are trained, the grid's others are someone else's (exit 0)
        typer.echo(f"{'' if err.trained is not None else 'error: '}{err}", err=err.trained is None)
        raise typer.Exit(code=0 if err.trained is not None else 1) from None
    except (CheckpointError, RunBusyError, ValueError, OSError, FloatingPointError) as err:
        # other settings than the run folder's, bad data, a model folder in use, a full disk: one line each
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    from pcatools.stats import table1_markdown  # deferred: start-up (see tests/test_imports.py)

    typer.echo(table1_markdown(result.table1))
    typer.echo(f"\nStudy written to {result.run_dir} in {time.perf_counter() - start:.0f} s")
    for name, path in result.figures.items():
        typer.echo(f"  {name}: {path}")
