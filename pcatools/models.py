"""The study's networks (paper section 2.4): ``build_model(name, ...)``, and ``check_network`` that
builds any network once on a small input before anything trains (the registry names networks and
imports no torch; building one is done here).

The names, labels and default arguments are declared once, in :mod:`pcatools.network_registry`
(which also takes any MONAI network by class name and a user's own, ``NAME=SPEC``). Three names, all MONAI networks with 3-D convolutions, 2 input channels (CT, PET) and 2 output
channels (background, lesion logits):

``segresnet``
    :class:`monai.networks.nets.SegResNet` as the paper describes it: encoder blocks
    ``(1, 2, 2, 4)``, decoder blocks ``(1, 1, 1)``, 16 initial filters doubling at each of the
    three down-samplings, GroupNorm (8 groups, MONAI's default) and ReLU. The public code builds
    the same network (MONAI defaults for everything else: no dropout, trilinear up-sampling).
``attention_unet``
    :class:`monai.networks.nets.AttentionUnet` as the paper describes it: five levels with
    ``(16, 32, 64, 128, 256)`` channels, stride 2 between levels, BatchNorm + ReLU in every
    convolution block (MONAI's implementation; its merge convolution after each attention gate
    uses MONAI's ``Convolution`` defaults, instance norm and PReLU).
``attention_unet_reference``
    The Attention U-Net of the public code (``pca_segment/segmentation/initialize_train.py``):
    six levels ``(16, 32, 64, 128, 256, 512)`` with strides ``(2, 2, 2, 2, 2)``. The paper's text
    names five levels; this variant is kept to reproduce the code's numbers.

``overrides`` replace any constructor argument (e.g. ``init_filters=4`` or
``channels=(4, 8, 16, 32, 64)`` for tiny networks on a CPU). A SegResNet with ``init_filters``
not divisible by 8 gets ``gcd(8, init_filters)`` GroupNorm groups unless ``norm`` is given too;
an Attention U-Net given ``channels`` without ``strides`` gets stride 2 between all its levels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pcatools.network_registry import (
    BUILTIN,
    NetworkEntry,
    NetworkError,
    accepted_keys,
    network_name,
    resolve_network,
)
from pcatools.specs import SpecError

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "check_network",
    "count_parameters",
    "min_input_multiple",
    "model_defaults",
    "network_class",
    "output_convolution",
    "set_output_prior",
]

MODEL_NAMES = tuple(e.name for e in BUILTIN)
"""pcatools' own networks (:data:`pcatools.network_registry.BUILTIN`, where their defaults are declared)."""

_BUILTIN = {e.name: e for e in BUILTIN}


def _canonical(name: str) -> str:
    key = network_name(name)
    if key not in _BUILTIN:
        raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
    return key


def model_defaults(name: str) -> dict[str, Any]:
    """The constructor arguments :func:`build_model` uses for ``name`` (a copy).

    Examples
    --------
    >>> model_defaults("attention_unet")["channels"]
    (16, 32, 64, 128, 256)
    """
    return dict(_BUILTIN[_canonical(name)].defaults)


def network_class(name: str) -> Any:
    """The class (or factory) :func:`build_model` calls for ``name``: ``SegResNet``, ``AttentionUnet``, a
    MONAI network or a user's.

    One place says which constructor a name builds, so that the arguments an override may set are
    read from the same constructor that :func:`build_model` calls (``pcatools train`` refuses the others).

    Examples
    --------
    >>> network_class("attention_unet_reference").__name__, network_class("UNet").__name__
    ('AttentionUnet', 'UNet')
    """
    return resolve_network(name).load()


def build_model(name: str, in_channels: int = 2, out_channels: int = 2, **overrides: Any) -> nn.Module:
    """Build one of the study's networks (paper section 2.4), a MONAI network or a registered one.

    Parameters
    ----------
    name
        ``"segresnet"``, ``"attention_unet"`` or ``"attention_unet_reference"``
        (case-insensitive; ``"attunet"`` as in the public code is accepted); a MONAI network by
        its class name (``"UNet"``, ``"monai.networks.nets.UNet"``); a registered network or
        ``NAME=SPEC`` (:mod:`pcatools.network_registry`).
    in_channels
        Input channels: 2 (channel 0 CT, channel 1 PET).
    out_channels
        Output channels: 2 (background and lesion logits; no softmax inside the network).
    **overrides
        Replace constructor arguments of the network, e.g. ``init_filters=8``.

    Returns
    -------
    torch.nn.Module
        A freshly initialised network (weights from torch's global RNG: seed it first).

    Examples
    --------
    >>> import torch
    >>> net = build_model("segresnet", init_filters=4)
    >>> net(torch.zeros(1, 2, 16, 16, 16)).shape
    torch.Size([1, 2, 16, 16, 16])
    >>> build_model("UNet", channels=(4, 8), strides=(2,))(torch.zeros(1, 2, 16, 16, 16)).shape
    torch.Size([1, 2, 16, 16, 16])
    """
    if in_channels < 1 or out_channels < 1:
        raise ValueError(
            f"build_model: in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}"
        )
    entry = resolve_network(name)
    network = entry.load()
    if not entry.builtin:  # a MONAI network by name or a user's: its options, then the overrides
        params = {**dict(entry.options), **overrides}
        keys = accepted_keys(network)
        if keys is not None and "spatial_dims" in keys:
            params.setdefault("spatial_dims", 3)
        built: nn.Module = network(in_channels=in_channels, out_channels=out_channels, **params)
        return built
    key = entry.name
    params = dict(entry.defaults)
    unknown_spatial = overrides.get("spatial_dims", 3)
    if unknown_spatial != 3:
        raise ValueError(f"build_model: the study's networks are 3-D; spatial_dims={unknown_spatial!r} given")
    if key == "segresnet" and "init_filters" in overrides and "norm" not in overrides:
        # GroupNorm needs the group count to divide every width (init_filters * 2**i): keep MONAI's
        # 8 groups where it does, else the largest divisor of init_filters below 8.
        params["norm"] = ("GROUP", {"num_groups": math.gcd(8, int(overrides["init_filters"]))})
    if key != "segresnet" and "channels" in overrides and "strides" not in overrides:
        params["strides"] = (2,) * (len(tuple(overrides["channels"])) - 1)
    params.update(overrides)
    for seq in ("channels", "strides", "blocks_down", "blocks_up"):
        if seq in params and params[seq] is not None:
            params[seq] = tuple(params[seq])
    if key == "segresnet":
        if len(params["blocks_up"]) != len(params["blocks_down"]) - 1:
            raise ValueError(
                f"build_model('segresnet'): blocks_up needs one entry fewer than blocks_down, found "
                f"blocks_down={params['blocks_down']} and blocks_up={params['blocks_up']}"
            )
        return network(in_channels=in_channels, out_channels=out_channels, **params)  # type: ignore[no-any-return]
    if len(params["strides"]) != len(params["channels"]) - 1:
        raise ValueError(
            f"build_model({key!r}): strides needs one entry fewer than channels, found "
            f"channels={params['channels']} and strides={params['strides']}"
        )
    return network(in_channels=in_channels, out_channels=out_channels, **params)  # type: ignore[no-any-return]


def output_convolution(net: nn.Module, out_channels: int = 2) -> nn.Module:
    """The network's output layer: its only convolution with ``out_channels`` output channels.

    Refused when there is none or more than one, since guessing would set the wrong layer's bias.

    Examples
    --------
    >>> output_convolution(build_model("segresnet", init_filters=8))
    Conv3d(8, 2, kernel_size=(1, 1, 1), stride=(1, 1, 1))
    """
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    found = [
        (n, m) for n, m in net.named_modules() if isinstance(m, kinds) and m.out_channels == out_channels
    ]
    if len(found) != 1:
        raise NetworkError(
            f"{type(net).__name__}: expected exactly one convolution with {out_channels} output channels "
            f"(the output layer), found {len(found)}" + (f": {[n for n, _ in found]}" if found else "")
        )
    layer = found[0][1]
    if layer.bias is None:
        raise NetworkError(f"{type(net).__name__}: its output convolution {found[0][0]!r} has no bias")
    return layer


def set_output_prior(net: nn.Module, prior: float, out_channels: int = 2) -> nn.Module:
    r"""Set the output layer's bias so that the untrained network predicts ``p_fg = prior`` everywhere.

    .. math:: b_0 = 0, \quad b_1 = \log\frac{\pi}{1 - \pi}
              \quad\Rightarrow\quad \operatorname{softmax}(b)_1 = \pi

    The prior-probability initialisation of Lin et al. 2017 (RetinaNet, focal loss): a network
    that starts near ``p = 0.5`` on a 1 %-foreground image can settle there under L1DFL, whose
    weights give every occupied L1 bin the same total weight (docs/decisions.md, 2026-12-06).
    Two classes (background, lesion) only. Returns ``net``.

    Examples
    --------
    >>> net = set_output_prior(build_model("segresnet", init_filters=8), 0.01)
    >>> round(torch.softmax(output_convolution(net).bias, 0)[1].item(), 6)
    0.01
    """
    if out_channels != 2:
        raise ValueError(
            f"set_output_prior: two output channels (background, lesion) only, got {out_channels}"
        )
    if not 0.0 < float(prior) < 1.0:
        raise ValueError(f"set_output_prior: prior must lie in (0, 1), got {prior!r}")
    bias = output_convolution(net, out_channels).bias
    assert isinstance(bias, torch.Tensor)  # output_convolution refuses a layer without one
    with torch.no_grad():
        bias.copy_(torch.tensor([0.0, math.log(prior / (1 - prior))]))
    return net


def min_input_multiple(name: str, **overrides: Any) -> int:
    """The number every spatial input size must be a multiple of (product of the down-samplings).

    For a network other than pcatools' own it is the product of its ``strides`` where it has integer
    strides, else 1 (:func:`check_network` tries it on an input instead).

    Examples
    --------
    >>> min_input_multiple("segresnet"), min_input_multiple("attention_unet_reference")
    (8, 32)
    """
    entry = resolve_network(name)
    params = {**dict(entry.defaults if entry.builtin else entry.options), **overrides}
    if entry.builtin and "blocks_down" in params:
        return int(2 ** (len(params["blocks_down"]) - 1))
    out = 1
    for s in params.get("strides") or ():
        out *= int(s) if isinstance(s, int) else 1
    return out


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``.

    Examples
    --------
    >>> count_parameters(nn.Conv3d(2, 16, 3, bias=False))
    864
    """
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def _shape(value: Any) -> str:
    return str(tuple(int(s) for s in value.shape)).replace(",)", ")")


def check_network(
    text: str,
    options: Mapping[str, Any] | None = None,
    *,
    in_channels: int = 2,
    out_channels: int = 2,
    size: tuple[int, int, int] = (32, 32, 32),
    output_prior: float | None = None,
) -> NetworkEntry:
    """Build the network and run it once on zeros ``(1, in_channels, *size)``; refuse what fails, in one line.

    The output must be a tensor of shape ``(1, out_channels, *size)`` (the logits the loss takes);
    a failure is a :class:`NetworkError` naming the spec and what was found, raised before
    anything trains. With ``output_prior`` its output layer must be found (:func:`set_output_prior`).
    Torch's random state is left as it was (building draws initial weights).
    """
    entry = resolve_network(text)
    x_shape = (1, int(in_channels), *(int(s) for s in size))
    expected = (1, int(out_channels), *(int(s) for s in size))
    with torch.random.fork_rng(devices=[]):
        try:
            net = build_model(
                entry.name, in_channels=in_channels, out_channels=out_channels, **dict(options or {})
            )
        except SpecError:
            raise
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise NetworkError(
                f"network {entry.shown}: building it failed ({type(err).__name__}: {first})"
            ) from None
        if not isinstance(net, torch.nn.Module):
            raise NetworkError(
                f"network {entry.shown}: builds a {type(net).__name__}, expected a torch.nn.Module"
            )
        if output_prior is not None:
            try:
                set_output_prior(net, output_prior, out_channels)
            except NetworkError as err:
                raise NetworkError(
                    f"network {entry.shown}: output_prior needs its output layer: {err}"
                ) from None
        net.eval()
        try:
            with torch.no_grad():
                out = net(torch.zeros(x_shape))
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise NetworkError(
                f"network {entry.shown} fails on an input {x_shape} ({type(err).__name__}: {first})"
            ) from None
    if not isinstance(out, torch.Tensor):
        raise NetworkError(
            f"network {entry.shown} returns a {type(out).__name__} on an input {x_shape}, expected a tensor "
            f"of shape {expected}"
        )
    if tuple(out.shape) != expected:
        raise NetworkError(
            f"network {entry.shown} returns shape {_shape(out)} on an input {x_shape}, expected {expected}"
        )
    return entry
