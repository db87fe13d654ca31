"""Table 1's footnote names every model that predicted nothing on any case (an empty mask scores
DSC 0 like a very poor model; issue 28 found such a model in the demo). Known answers from
hand-made per-case tables."""

from __future__ import annotations

import pandas as pd

from pcatools.analysis import empty_models_note


def _cases(n_pred: dict[tuple[str, str, int], list[int]]) -> pd.DataFrame:
    rows = []
    for (network, loss, seed), counts in n_pred.items():
        for i, n in enumerate(counts):
            rows.append(
                {"network": network, "loss": loss, "seed": seed, "case_id": f"c{i}", "n_pred_lesions": n}
            )
    return pd.DataFrame(rows)


def test_a_model_empty_on_every_case_is_named_per_seed() -> None:
    cases = _cases(
        {
            ("attention_unet", "dice_focal", 0): [0, 0, 0],  # empty everywhere
            ("attention_unet", "dice_focal", 1): [0, 2, 0],  # one case with a prediction: not empty
            ("segresnet", "l1dfl", 0): [1, 1, 1],
            ("segresnet", "l1dfl", 1): [0, 0, 0],  # empty everywhere
        }
    )
    assert empty_models_note(cases) == [
        "Predicted nothing on any case: Attention U-Net DFL (3 of 3 cases empty, seed 0); SegResNet L1DFL "
        "(3 of 3 cases empty, seed 1). Their DSC and TP are those of empty masks, not of poor segmentations."
    ]
    assert empty_models_note(cases.drop(columns="seed").iloc[:3]) == [
        "Predicted nothing on any case: Attention U-Net DFL (3 of 3 cases empty). Its DSC and TP are those "
        "of an empty mask, not of a poor segmentation."
    ]
    assert empty_models_note(cases[cases["n_pred_lesions"] > 0]) == []
    assert empty_models_note(cases.drop(columns="n_pred_lesions")) == []  # nothing to tell it by


def test_an_evaluation_arm_is_named_as_given() -> None:
    cases = pd.DataFrame(
        {
            "network": "",
            "model": ["mine", "mine", "theirs", "theirs"],
            "case_id": ["a", "b"] * 2,
            "n_pred_lesions": [0, 0, 4, 1],
        }  # fmt: skip
    )
    assert empty_models_note(cases, arm="model") == [
        "Predicted nothing on any case: mine (2 of 2 cases empty). Its DSC and TP are those of an empty "
        "mask, not of a poor segmentation."
    ]
