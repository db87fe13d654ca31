"""``training_batch``: the patches a run trains on, through its network, as cases napari opens (notebook 02)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pcatools.data.manifest import read_manifest
from pcatools.inference import load_model, sliding_window_logits
from pcatools.training import SlidingWindow, TrainConfig, training_batch


@pytest.mark.slow
def test_training_batch_is_the_runs_pipeline_and_network(ci_study: Path) -> None:
    checkpoint = ci_study / "models" / "segresnet__l1dfl" / "best.pt"
    split = read_manifest(ci_study / "split.csv")
    batch = training_batch(split, checkpoint)
    model, recorded = load_model(checkpoint, "cpu")
    config = TrainConfig.from_dict(recorded, recorded=True)
    # the run's batch size, its first training cases, its patch and spacing
    assert batch.image.shape == (config.batch_size, 2, *config.patch_size)
    assert batch.case_ids == tuple(split.loc[split["split"] == "train", "case_id"].head(config.batch_size))
    assert batch.spacing == config.spacing == (6.0, 6.0, 6.0)
    # the probabilities are the network's: one window over the patch gives the same softmax
    logits = sliding_window_logits(model, batch.image, SlidingWindow(config.patch_size), device="cpu")
    torch.testing.assert_close(batch.probs, torch.softmax(logits, dim=1), rtol=1e-5, atol=1e-6)
    # a patch as a case: CT back in HU over the paper's window [-1000, 3000], PET and label as they are
    case, probs = batch.patch_case(1)
    np.testing.assert_allclose((case.ct + 1000.0) / 4000.0, batch.image[1, 0].numpy(), rtol=0, atol=1e-6)
    assert case.ct.min() >= -1000.0 - 1e-3 and case.ct.max() <= 3000.0 + 1e-3
    np.testing.assert_array_equal(case.pet, batch.image[1, 1].numpy())
    np.testing.assert_array_equal(case.label, batch.label[1, 0].numpy())
    np.testing.assert_array_equal(case.affine, np.diag([6.0, 6.0, 6.0, 1.0]))
    np.testing.assert_array_equal(probs, batch.probs[1, 1].numpy())
    # seeded: the same patches again
    torch.testing.assert_close(training_batch(split, checkpoint).image, batch.image)
    with pytest.raises(IndexError, match="index 5 outside the batch of 2"):
        batch.patch_case(5)
