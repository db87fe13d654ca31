"""``pcatools.models``: the paper's networks, their parameter counts and their input/output shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pcatools.models import (
    MODEL_NAMES,
    build_model,
    count_parameters,
    min_input_multiple,
    model_defaults,
    output_convolution,
    set_output_prior,
)
from pcatools.network_registry import NetworkError

# Parameter counts of the default networks (in_channels=2, out_channels=2). Obtained once with
# ``count_parameters(build_model(name))`` under MONAI 1.6.1 and cross-checked below against the
# closed-form counts ``_segresnet_formula`` / ``_attention_unet_formula``, written from the
# architectures' definitions (paper 2.4 and MONAI's layer layout), not from the modules.
EXPECTED = {
    "segresnet": 4_701_346,
    "attention_unet": 5_909_562,
    "attention_unet_reference": 23_674_814,
}


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    """Weights of a 3-D (transposed) convolution with a cubic kernel: cin*cout*k^3 (+ cout biases)."""
    return cin * cout * k**3 + (cout if bias else 0)


def _segresnet_formula(
    cin: int, cout: int, f: int, blocks_down: tuple[int, ...], blocks_up: tuple[int, ...]
) -> int:
    """SegResNet: convInit 3^3 no bias; ResBlock(c) = 2 x (GroupNorm 2c + conv c->c 3^3 no bias);
    each deeper level starts with a stride-2 conv c/2 -> c; each up level a 1x1 conv c -> c/2
    (no bias, trilinear up-sampling has no weights); final GroupNorm(f) + 1x1 conv with bias."""
    res = lambda c: 2 * (2 * c + _conv(c, c, 3, bias=False))  # noqa: E731
    total = _conv(cin, f, 3, bias=False)
    for i, n in enumerate(blocks_down):
        c = f * 2**i
        if i > 0:
            total += _conv(c // 2, c, 3, bias=False)
        total += n * res(c)
    n_up = len(blocks_up)
    for i, n in enumerate(blocks_up):
        c = f * 2 ** (n_up - i)
        total += _conv(c, c // 2, 1, bias=False) + n * res(c // 2)
    return total + 2 * f + _conv(f, cout, 1)


def _attention_unet_formula(cin: int, cout: int, channels: tuple[int, ...]) -> int:
    """MONAI AttentionUnet: ConvBlock = 2 x (conv 3^3 with bias + BatchNorm 2c); per level an
    attention gate (three 1x1 convs with bias + BatchNorm each, F_int = c/2, psi -> 1 channel),
    a transposed 3^3 up-convolution + BatchNorm, and a merge conv 2c -> c 3^3 with bias, instance
    norm without affine weights and one PReLU weight; a 1x1 output conv with bias."""
    bn = lambda c: 2 * c  # noqa: E731
    block = lambda a, b: _conv(a, b, 3) + bn(b) + _conv(b, b, 3) + bn(b)  # noqa: E731
    total = block(cin, channels[0]) + _conv(channels[0], cout, 1)
    for c0, c1 in zip(channels[:-1], channels[1:], strict=True):
        gate = 2 * (_conv(c0, c0 // 2, 1) + bn(c0 // 2)) + _conv(c0 // 2, 1, 1) + bn(1)
        up = _conv(c1, c0, 3) + bn(c0)
        merge = _conv(2 * c0, c0, 3) + 1
        total += block(c0, c1) + gate + up + merge
    return total


def test_parameter_counts_match_recorded_values() -> None:
    for name, expected in EXPECTED.items():
        assert count_parameters(build_model(name)) == expected, name


def test_parameter_counts_match_closed_form() -> None:
    assert _segresnet_formula(2, 2, 16, (1, 2, 2, 4), (1, 1, 1)) == EXPECTED["segresnet"]
    assert _attention_unet_formula(2, 2, (16, 32, 64, 128, 256)) == EXPECTED["attention_unet"]
    assert _attention_unet_formula(2, 2, (16, 32, 64, 128, 256, 512)) == EXPECTED["attention_unet_reference"]
    # and for small overridden widths (the formula is not tuned to the defaults)
    small = build_model("attention_unet", in_channels=3, out_channels=4, channels=(4, 8, 16))
    assert count_parameters(small) == _attention_unet_formula(3, 4, (4, 8, 16))
    tiny = build_model("segresnet", init_filters=4)
    assert count_parameters(tiny) == _segresnet_formula(2, 2, 4, (1, 2, 2, 4), (1, 1, 1))


def test_one_conv_block_by_hand() -> None:
    # SegResNet's first ResBlock at 16 channels: two GroupNorm(16) (16 weights + 16 biases each) and
    # two 3x3x3 16->16 convolutions without bias: 2 * (32 + 16*16*27) = 13888.
    net = build_model("segresnet")
    assert count_parameters(net.down_layers[0][1]) == 2 * (32 + 16 * 16 * 27) == 13888
    # Attention U-Net head: conv 2->16 (864 + 16 bias) + BN 32, conv 16->16 (6912 + 16) + BN 32 = 7872.
    att = build_model("attention_unet")
    assert count_parameters(att.model[0]) == 864 + 16 + 32 + 6912 + 16 + 32 == 7872


def test_paper_architecture_details() -> None:
    seg = build_model("segresnet")
    # ResBlocks per level (after the down-sampling convolution)
    assert [len(layer) - 1 for layer in seg.down_layers] == [1, 2, 2, 4]
    assert [len(layer) for layer in seg.up_layers] == [1, 1, 1]
    norms = [m for m in seg.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 8 for m in norms)
    assert any(isinstance(m, nn.ReLU) for m in seg.modules())
    assert not any(isinstance(m, nn.BatchNorm3d | nn.InstanceNorm3d) for m in seg.modules())
    assert seg.convInit.conv.out_channels == 16
    att = build_model("attention_unet")
    assert sum(isinstance(m, nn.BatchNorm3d) for m in att.modules()) > 0
    assert not any(isinstance(m, nn.GroupNorm) for m in att.modules())
    assert model_defaults("attention_unet_reference")["channels"][-1] == 512


@pytest.mark.parametrize("name", ["segresnet", "attention_unet"])
def test_forward_keeps_spatial_shape_and_channels(name: str) -> None:
    torch.manual_seed(0)
    small = {"segresnet": {"init_filters": 4}, "attention_unet": {"channels": (4, 8, 16, 32, 64)}}[name]
    net = build_model(name, **small).eval()
    size = 2 * min_input_multiple(name)
    with torch.no_grad():
        out = net(torch.randn(1, 2, size, size, size))
    assert out.shape == (1, 2, size, size, size)


def test_same_seed_same_weights_and_names() -> None:
    torch.manual_seed(3)
    a = build_model("SegResNet", init_filters=4)
    torch.manual_seed(3)
    b = build_model("segresnet", init_filters=4)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert set(MODEL_NAMES) == set(EXPECTED)


def test_bad_names_and_arguments() -> None:
    with pytest.raises(ValueError, match="unknown network 'unetr'"):
        build_model("unetr")
    with pytest.raises(ValueError, match="strides needs one entry fewer than channels"):
        build_model("attention_unet", channels=(4, 8, 16), strides=(2, 2, 2))
    with pytest.raises(ValueError, match="3-D"):
        build_model("segresnet", spatial_dims=2)


@pytest.mark.parametrize(("name", "overrides"), [("segresnet", {"init_filters": 8}), ("attention_unet", {})])
def test_output_prior_sets_the_output_bias_by_hand(name: str, overrides: dict) -> None:
    """b = (0, log(pi / (1 - pi))): softmax(b) = (1 - pi, pi); pi = 0.01 gives b_1 = -4.59512."""
    net = set_output_prior(build_model(name, **overrides), 0.01)
    bias = output_convolution(net).bias.detach()
    assert bias[0].item() == 0.0
    assert bias[1].item() == pytest.approx(-4.59512, abs=1e-5)
    assert torch.softmax(bias, 0)[1].item() == pytest.approx(0.01, rel=1e-6)
    # the only layer touched: every other parameter is the freshly seeded network's
    torch.manual_seed(0)
    plain = build_model(name, **overrides)
    torch.manual_seed(0)
    primed = set_output_prior(build_model(name, **overrides), 0.01)
    differ = [k for k, v in plain.state_dict().items() if not torch.equal(v, primed.state_dict()[k])]
    assert len(differ) == 1 and differ[0].endswith("bias")


def test_output_prior_refuses_what_it_cannot_set() -> None:
    two = nn.Sequential(nn.Conv3d(2, 2, 1), nn.Conv3d(2, 2, 1))
    with pytest.raises(NetworkError, match="exactly one convolution with 2 output channels .*found 2"):
        set_output_prior(two, 0.01)
    with pytest.raises(NetworkError, match="has no bias"):
        set_output_prior(nn.Sequential(nn.Conv3d(2, 2, 1, bias=False)), 0.01)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="prior must lie in"):
            set_output_prior(build_model("segresnet", init_filters=4), bad)
