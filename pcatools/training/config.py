"""The training settings, listed once: :class:`TrainConfig` and its sliding window :class:`SlidingWindow`.

Everything else derives from these two classes: :func:`pcatools.training.train` takes a
``TrainConfig``; a run folder's ``config.yaml`` and its checkpoints record
:meth:`TrainConfig.to_dict`; the settings a run may not change when it resumes are the fields
marked ``identity`` (:data:`IDENTITY_KEYS`); the study's profiles are a ``TrainConfig`` plus
per-network changes (:class:`pcatools.study.StudyProfile`); ``pcatools train``'s options take
their help from :func:`setting_help`; and ``configs/*.yaml`` load through
:meth:`TrainConfig.from_dict`, which refuses a key that is not a setting, naming it.

Examples
--------
>>> cfg = TrainConfig(epochs=40, patch_size=(32, 32, 32), spacing=(4.0, 4.0, 4.0))
>>> cfg.sliding_window.roi_size, cfg.replace(lr=1e-3).lr
((32, 32, 32), 0.001)
>>> TrainConfig.from_dict({"lr": 1e-3, "eopchs": 3}, where="my.yaml")
Traceback (most recent call last):
...
ValueError: my.yaml: unknown training setting 'eopchs' (did you mean 'epochs'?)
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pcatools.network_registry import accepted_keys, resolve_network

__all__ = [
    "SW_MODES",
    "DEFAULT_WINDOW",
    "IDENTITY_KEYS",
    "RUN_FACTS",
    "SlidingWindow",
    "TrainConfig",
    "check_window",
    "parse_triple",
    "setting_help",
]

SW_MODES = ("gaussian", "constant")
"""Sliding-window blending modes (MONAI ``sliding_window_inference``'s ``mode``)."""

RUN_FACTS = (
    "device", "world_size", "run_dir", "manifest", "manifest_source", "loss_source", "network_source",
)  # fmt: skip
"""Keys a recorded config (``config.yaml``, checkpoints) holds besides the settings: where and on
what the run trained. :meth:`TrainConfig.from_dict` skips them with ``recorded=True``."""

#: names of settings written by runs before 2026-11-29 (one name each since; decisions.md)
_RENAMED = {"val_roi_size": "roi_size", "sw_mode": "mode"}


def _setting(default: Any = None, *, help: str, identity: bool = False, factory: Any = None) -> Any:
    meta = {"help": help, "identity": identity}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def parse_triple(value: Any, kind: type, name: str) -> tuple[Any, Any, Any]:
    """One number per axis (x, y, z) from one number for all three or three: a sequence, a number, or
    text as on the command line (``"128"``, ``"128,128,96"``, ``"128x128x96"``).

    Raises ``ValueError`` naming the setting ``name`` and what was found.

    Examples
    --------
    >>> parse_triple("2", float, "spacing"), parse_triple("96,96,64", int, "patch_size")
    ((2.0, 2.0, 2.0), (96, 96, 64))
    >>> parse_triple([1, 2], int, "roi_size")
    Traceback (most recent call last):
    ...
    ValueError: roi_size: expected 1 or 3 numbers, found [1, 2]
    """
    if isinstance(value, str):
        parts: list[Any] = [p for p in value.replace("x", ",").split(",") if p.strip()]
    else:
        parts = list(value) if isinstance(value, Sequence) else [value]
    try:
        values = tuple(kind(float(p)) if kind is int else kind(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected 1 or 3 numbers, found {value!r}") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"{name}: expected 1 or 3 numbers, found {value!r}")
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class SlidingWindow:
    """Sliding-window inference settings, shared by validation (:func:`pcatools.training.train`) and
    prediction (:func:`pcatools.inference.predict_manifest`), so that both see a case alike.

    ``roi_size`` is the window in voxels; ``overlap`` the fraction windows share; ``mode`` the
    blending (:data:`SW_MODES`); ``sw_batch_size`` the windows per forward pass.

    Examples
    --------
    >>> SlidingWindow((32, 32, 32), overlap=0.5).overlap
    0.5
    >>> SlidingWindow((32, 32, 32), mode="median")
    Traceback (most recent call last):
    ...
    ValueError: mode must be one of ('gaussian', 'constant'), found 'median'
    """

    roi_size: tuple[int, int, int] = (128, 128, 128)
    overlap: float = 0.25
    mode: str = "gaussian"
    sw_batch_size: int = 4

    def __post_init__(self) -> None:
        check_window(self.roi_size, self.overlap, self.mode, self.sw_batch_size)
        object.__setattr__(self, "roi_size", parse_triple(self.roi_size, int, "roi_size"))
        object.__setattr__(self, "overlap", float(self.overlap))
        object.__setattr__(self, "sw_batch_size", int(self.sw_batch_size))

    @classmethod
    def from_recorded(cls, config: Mapping[str, Any]) -> SlidingWindow:
        """The validation window a run recorded (its ``config.yaml`` or a checkpoint's ``config``),
        also under the names older runs used; ``roi_size`` defaults to the run's ``patch_size``."""
        get = {_RENAMED.get(k, k): v for k, v in config.items()}.get
        default = cls()
        return cls(
            get("roi_size") or get("patch_size") or default.roi_size,
            get("overlap", default.overlap),
            get("mode", default.mode),
            get("sw_batch_size", default.sw_batch_size),
        )


def check_window(
    roi_size: Sequence[int] | None = None,
    overlap: float | None = None,
    mode: str | None = None,
    sw_batch_size: int | None = None,
) -> None:
    """The sliding-window rules, for the settings given (``None``: not given).

    ``pcatools predict`` checks its options with them before anything is loaded.

    Examples
    --------
    >>> check_window(overlap=1.5)
    Traceback (most recent call last):
    ...
    ValueError: overlap must be in [0, 1), found 1.5
    """
    if roi_size is not None:
        roi = tuple(roi_size)
        if len(roi) != 3 or any(int(r) < 1 for r in roi):
            raise ValueError(f"roi_size must be 3 positive integers (x, y, z), found {roi}")
    if overlap is not None and not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must be in [0, 1), found {overlap}")
    if mode is not None and mode not in SW_MODES:
        raise ValueError(f"mode must be one of {SW_MODES}, found {mode!r}")
    if sw_batch_size is not None and int(sw_batch_size) < 1:
        raise ValueError(f"sw_batch_size must be >= 1, found {sw_batch_size}")


DEFAULT_WINDOW = SlidingWindow()
"""The sliding window's defaults (:class:`SlidingWindow`'s fields): the training settings' window and
prediction's take theirs from it."""


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (paper section 2.5 for the defaults).

    Fields marked ``identity`` define the run: resuming with one changed is refused
    (:data:`IDENTITY_KEYS`). Mappings (the ``*_overrides``) are copied; sequences become tuples.
    """

    model: str = _setting(
        "segresnet",
        help="The network: segresnet | attention_unet | attention_unet_reference, a MONAI network by class "
        "name (UNet, monai.networks.nets.UNet), or your own as NAME=SPEC (docs/losses.md).",
        identity=True,
    )
    model_overrides: dict[str, Any] = _setting(
        help="Extra arguments of the network's constructor (build_model), e.g. init_filters=8.",
        identity=True,
        factory=dict,
    )
    in_channels: int = _setting(2, help="Network input channels (CT, PET).", identity=True)
    out_channels: int = _setting(2, help="Network output channels (background, lesion).", identity=True)
    output_prior: float | None = _setting(
        None,
        help="Lesion probability the untrained network predicts everywhere: the output layer's bias is "
        "set to log(p / (1 - p)) (RetinaNet's prior initialisation; default: the network's own).",
        identity=True,
    )
    loss: str = _setting(
        "l1dfl",
        help="The loss: a name of the loss registry, or your own as NAME=SPEC (docs/losses.md).",
        identity=True,
    )
    loss_overrides: dict[str, Any] = _setting(
        help="Extra arguments of build_loss.", identity=True, factory=dict
    )
    epochs: int = _setting(
        1000, help="Epochs of the run (paper: 1000); also the cosine schedule's length.", identity=True
    )
    batch_size: int = _setting(2, help="Patches per optimiser step per process (paper: 2).", identity=True)
    lr: float = _setting(2e-4, help="AdamW learning rate (paper: 2e-4), cosine-annealed to 0.", identity=True)
    warmup_epochs: int = _setting(
        0, help="Epochs of linear lr warm-up before the cosine annealing (paper: 0).", identity=True
    )
    weight_decay: float = _setting(1e-5, help="AdamW weight decay (paper: 1e-5).", identity=True)
    patch_size: tuple[int, int, int] = _setting(
        (128, 128, 128), help="Training patch in voxels: '128' or '128,128,96' (paper: 128).", identity=True
    )
    spacing: tuple[float, float, float] = _setting(
        (2.0, 2.0, 2.0), help="Resampling spacing in mm: '2' or '2,2,3' (paper: 2).", identity=True
    )
    num_samples: int = _setting(1, help="Random crops per case per visit.", identity=True)
    seed: int = _setting(
        0, help="Seed of weights, shuffling and augmentation (and the split).", identity=True
    )
    transform_overrides: dict[str, Any] = _setting(
        help="Extra arguments of train_transforms (and of eval_transforms where it takes them), e.g. "
        "variant=reference-code.",
        identity=True,
        factory=dict,
    )
    val_every: int = _setting(10, help="Validate every k epochs (and after the last).")
    roi_size: tuple[int, int, int] | None = _setting(
        None, help="Sliding-window size in voxels for validation and prediction (default: patch_size)."
    )
    overlap: float = _setting(DEFAULT_WINDOW.overlap, help="Sliding-window overlap fraction.")
    mode: str = _setting(DEFAULT_WINDOW.mode, help="Sliding-window blending: gaussian | constant.")
    sw_batch_size: int = _setting(DEFAULT_WINDOW.sw_batch_size, help="Sliding windows per forward pass.")
    max_steps_per_epoch: int | None = _setting(None, help="Cap on optimiser steps per epoch (CPU demos).")
    amp: bool | None = _setting(None, help="Mixed precision (default: on with CUDA).")
    workers: int | None = _setting(
        None, help="Data-loading processes per GPU/process (default: by CPU count)."
    )
    threads: int | None = _setting(
        None,
        help="CPU threads of torch in training and prediction (default: torch's own, one per core); "
        "a CPU run's numbers hold for one thread count.",
    )
    cache_rate: float = _setting(1.0, help="Fraction of cases whose preprocessing is cached in memory.")
    deterministic: bool | None = _setting(None, help="Deterministic cuDNN (default: only on CPU).")
    tensorboard: bool = _setting(True, help="Write TensorBoard events.")

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "patch_size", parse_triple(self.patch_size, int, "patch_size"))
        put(self, "spacing", parse_triple(self.spacing, float, "spacing"))
        if self.roi_size is not None:
            put(self, "roi_size", parse_triple(self.roi_size, int, "roi_size"))
        for name in ("model_overrides", "loss_overrides", "transform_overrides"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ValueError(f"{name}: expected a mapping of KEY: VALUE, found {value!r}")
            put(self, name, dict(value))
        for name in ("epochs", "batch_size", "val_every", "num_samples", "in_channels", "out_channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, found {getattr(self, name)}")
        if any(s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive (mm), found {self.spacing}")
        if not 0 <= int(self.warmup_epochs) < int(self.epochs):
            raise ValueError(
                f"warmup_epochs must be in [0, epochs={self.epochs}), found {self.warmup_epochs}"
            )
        if not 0.0 <= float(self.cache_rate) <= 1.0:
            raise ValueError(f"cache_rate must be in [0, 1], found {self.cache_rate}")
        if self.output_prior is not None and not 0.0 < float(self.output_prior) < 1.0:
            raise ValueError(f"output_prior must lie in (0, 1), found {self.output_prior}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"threads must be >= 1, found {self.threads}")
        if self.workers is not None and int(self.workers) < 0:
            raise ValueError(f"workers must be >= 0, found {self.workers}")
        self.sliding_window  # noqa: B018  (checks roi_size, overlap, mode, sw_batch_size)

    @property
    def sliding_window(self) -> SlidingWindow:
        """The validation window (``roi_size``, default the training patch), also prediction's default."""
        return SlidingWindow(self.roi_size or self.patch_size, self.overlap, self.mode, self.sw_batch_size)

    # ------------------------------------------------------------------ conversions

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config", recorded: bool = False) -> TrainConfig:
        """A config from a mapping (a YAML file, ``config.yaml``, a checkpoint's ``config``).

        A key that is not a setting raises ``ValueError`` naming it and ``where`` (with the nearest
        setting name). ``recorded=True`` reads what a run wrote: the :data:`RUN_FACTS` are skipped,
        and the names older runs used (``val_roi_size``, ``sw_mode``) are read as today's.
        """
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if recorded and key in RUN_FACTS:
                continue
            name = _RENAMED.get(key, key) if recorded else key
            if name not in names:
                near = difflib.get_close_matches(str(key), sorted(names), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else f"; settings: {', '.join(sorted(names))}"
                raise ValueError(f"{where}: unknown training setting {key!r}{hint}")
            values[name] = value
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a plain mapping (what ``config.yaml`` and checkpoints record)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (checked as :meth:`from_dict` checks a file)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes}, where="TrainConfig.replace")

    def check_components(self) -> None:
        """Refuse what only the network, the loss and the transforms can tell (imports torch/MONAI).

        Override keys they do not take (naming the allowed ones; otherwise a mistyped key is a
        ``TypeError`` deep inside MONAI), a loss that fails :func:`pcatools.losses.check_loss` (a
        ``LossError`` naming its spec), a network other than pcatools' own that fails
        :func:`pcatools.models.check_network` (a ``NetworkError`` naming its spec: it must
        build and return ``(1, out_channels, *spatial)`` on an input of 32^3, or the patch where
        smaller) and a patch that the network's down-sampling cannot divide.
        """
        from pcatools.data.transforms import (
            train_transforms,  # deferred: start-up (see tests/test_imports.py)
        )
        from pcatools.losses import build_loss, check_loss  # deferred: start-up (see tests/test_imports.py)
        from pcatools.models import (  # deferred: start-up (see tests/test_imports.py)
            check_network,
            min_input_multiple,
            network_class,
        )

        network = network_class(self.model)  # a NetworkError naming the spec where it cannot be loaded
        network_keys = accepted_keys(network)
        for what, given, keys, reserved in (
            ("model_overrides", self.model_overrides, network_keys, {"in_channels", "out_channels"}),
            (
                "transform_overrides",
                self.transform_overrides,
                set(inspect.signature(train_transforms).parameters),
                {"spacing", "patch_size", "num_samples"},
            ),
        ):
            if keys is None:  # a constructor taking **kwargs: check_network tries the options
                continue
            allowed = sorted(keys - reserved)
            unknown = sorted(set(given) - set(allowed))
            if unknown:
                owner = (
                    f"{self.model!r} ({getattr(network, '__name__', type(network).__name__)})"
                    if what == "model_overrides"
                    else "train_transforms"
                )
                raise ValueError(
                    f"train: {what} {unknown} are not arguments of {owner}; allowed: {', '.join(allowed)}"
                )
        try:
            build_loss(self.loss, **self.loss_overrides)
        except TypeError as err:
            raise ValueError(
                f"train: loss_overrides {sorted(self.loss_overrides)} do not fit loss {self.loss!r} ({err})"
            ) from None
        check_loss(self.loss, self.loss_overrides)  # a finite scalar with a finite gradient, or LossError
        if not resolve_network(self.model).builtin:  # built and run once on a small input, or NetworkError
            check_network(
                self.model,
                self.model_overrides,
                in_channels=self.in_channels,
                out_channels=self.out_channels,
                size=parse_triple(tuple(min(32, p) for p in self.patch_size), int, "patch_size"),
                output_prior=self.output_prior,
            )
        multiple = min_input_multiple(self.model, **self.model_overrides)
        if any(p % multiple for p in self.patch_size):
            raise ValueError(
                f"train: every patch_size entry must be a multiple of {multiple} for {self.model!r} "
                f"(its down-sampling factor), got patch_size={self.patch_size}"
            )


IDENTITY_KEYS: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig) if f.metadata["identity"])
"""Settings that define a run: resuming with any of them changed is refused."""


def setting_help(name: str) -> str:
    """The one description of a setting (``pcatools train --help`` shows it).

    Examples
    --------
    >>> setting_help("lr")
    'AdamW learning rate (paper: 2e-4), cosine-annealed to 0.'
    """
    by_name = {f.name: f for f in fields(TrainConfig)}
    if name not in by_name:
        raise KeyError(f"no training setting {name!r}")
    return str(by_name[name].metadata["help"])
