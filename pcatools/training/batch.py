"""One batch of a run's training pipeline through its trained network, for looking at the L1 weights.

Notebook 02 and the README's napari picture show what L1DFL weighs during training: the patches a
run trains on (its own transforms: resampling, CT window, lesion-biased crops, augmentation), the
network's foreground probabilities on them, and each patch as a :class:`~pcatools.data.case.Case`
in millimetres that :func:`pcatools.viewer.view_case` opens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from pcatools.data.case import Case
from pcatools.data.manifest import read_manifest
from pcatools.inference import load_model, sliding_window_logits
from pcatools.training.config import SlidingWindow, TrainConfig

__all__ = ["TrainingBatch", "training_batch"]


@dataclass(frozen=True)
class TrainingBatch:
    """Patches of a training batch and the network's output on them.

    ``image`` is ``(B, 2, X, Y, Z)`` (CT scaled to [0, 1] over ``ct_range`` HU, PET in SUV),
    ``label`` ``(B, 1, X, Y, Z)`` (0/1), ``probs`` the softmax ``(B, 2, X, Y, Z)``, ``spacing``
    the patches' voxel size in mm, ``case_ids`` the case of each patch.
    """

    image: torch.Tensor
    label: torch.Tensor
    probs: torch.Tensor
    spacing: tuple[float, float, float]
    ct_range: tuple[float, float]
    case_ids: tuple[str, ...]

    def patch_case(self, index: int = 0) -> tuple[Case, np.ndarray]:
        """Patch ``index`` as a case (CT back in HU, PET in SUV, its label; affine = spacing) and
        its foreground probability map, for :func:`pcatools.viewer.view_case` (``probs=``)."""
        if not 0 <= index < self.image.shape[0]:
            raise IndexError(f"patch_case: index {index} outside the batch of {self.image.shape[0]}")
        lo, hi = self.ct_range
        case = Case(
            case_id=self.case_ids[index],
            pet=self.image[index, 1].numpy(),
            ct=self.image[index, 0].numpy() * (hi - lo) + lo,
            label=self.label[index, 0].numpy().astype(np.uint8),
            affine=np.diag([*self.spacing, 1.0]),
        )
        return case, self.probs[index, 1].numpy()


def training_batch(
    manifest: pd.DataFrame | str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    batch_size: int | None = None,
    seed: int = 0,
) -> TrainingBatch:
    """The first ``batch_size`` ``train`` rows of ``manifest`` (default: the run's batch size)
    through the run's training transforms (seeded by ``seed``, one crop per case) and its network.

    The settings (spacing, patch, transforms, network) are the checkpoint's own, so the patches
    are those the run trained on, and the probabilities those of its network.
    """
    from pcatools.data.transforms import (  # deferred: start-up (see tests/test_imports.py)
        PAPER_CT_RANGE,
        train_transforms,
    )

    model, recorded = load_model(checkpoint, "cpu")
    config = TrainConfig.from_dict(recorded, where=str(checkpoint), recorded=True)
    table = read_manifest(manifest)
    rows = table[table["split"] == "train"] if "split" in table else table
    rows = rows.head(int(batch_size or config.batch_size))
    if rows.empty:
        raise ValueError(f"training_batch: the manifest has no 'train' rows ({len(table)} rows)")
    tf_kw: dict[str, Any] = dict(config.transform_overrides)
    tf = train_transforms(spacing=config.spacing, patch_size=config.patch_size, seed=seed, **tf_kw)
    samples = [tf(row)[0] for row in rows.to_dict("records")]
    image = torch.stack([s["image"].as_tensor() for s in samples])
    label = torch.stack([s["label"].as_tensor() for s in samples]).long()
    # one window over the patch: the probabilities pcatools' prediction gives (channels-last on CPU)
    probs = torch.softmax(sliding_window_logits(model, image, SlidingWindow(config.patch_size), "cpu"), dim=1)
    ct_range = tuple(float(v) for v in tf_kw.get("ct_range", PAPER_CT_RANGE))
    return TrainingBatch(
        image=image,
        label=label,
        probs=probs,
        spacing=config.spacing,
        ct_range=(ct_range[0], ct_range[1]),
        case_ids=tuple(str(c) for c in rows["case_id"]),
    )
