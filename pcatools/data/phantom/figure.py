"""Overview figure of phantom cases: coronal PET maximum-intensity projection beside a coronal CT slice.

Run ``python -m pcatools.data.phantom.figure docs/figures/phantom.png`` to regenerate
``docs/figures/phantom.png`` (seeds 0-3 of cohort seed 0, 4 mm).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import cc3d
import numpy as np

from pcatools._atomic import atomic_path
from pcatools.data.case import Case
from pcatools.data.phantom.cohort import case_id_for
from pcatools.data.phantom.render import make_case


def _coronal(a: np.ndarray) -> np.ndarray:
    """(x, z) plane -> image rows = superior at the top, columns = patient's right on the viewer's left."""
    return a[::-1, :].T[::-1, :]


def largest_lesion_slice(label: np.ndarray | None) -> tuple[int, int | None]:
    """Number of lesions of a 0/1 mask and the coronal index ``y`` through its largest one.

    Lesions are the 18-connected components (:func:`pcatools.data.io.count_lesions`), so the
    figure counts what every metric counts, for loaded cases as for generated ones; ``y`` is
    the coronal slice holding the most voxels of the component with the most voxels (the
    first such slice on ties), so the slice always cuts that lesion. ``(0, None)`` without
    lesions.

    Examples
    --------
    >>> m = np.zeros((4, 6, 4), np.uint8); m[0, 1, 0] = 1; m[2:4, 3:5, 2] = 1; m[2, 4, 3] = 1
    >>> largest_lesion_slice(m)
    (2, 4)
    """

    if label is None:
        return 0, None
    labels, n = cc3d.connected_components(np.asarray(label, dtype=np.uint8), connectivity=18, return_N=True)
    if n == 0:
        return 0, None
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    return int(n), int(np.argmax(largest.sum(axis=(0, 2))))


def plot_cases(
    cases: Sequence[Case], suv_max: float = 10.0, ct_window: tuple[float, float] = (-400.0, 600.0)
) -> Any:
    """Matplotlib figure: per case a coronal PET MIP (inverted grey, SUV 0..``suv_max``, lesion outlines
    red) beside the coronal CT slice through its largest lesion (or the body centre).

    Lesions are counted and the slice chosen on the label (:func:`largest_lesion_slice`), not on
    ``case.meta``, which only generated cases fill. Returns the ``matplotlib.figure.Figure``,
    already closed in pyplot: a notebook shows it once, as the cell's value (an open figure
    would be drawn a second time by the inline backend), and repeated calls leave no open
    figures behind. Radiological convention: the patient's right on the viewer's left.
    """
    import matplotlib  # deferred: start-up (see tests/test_imports.py)

    if matplotlib.get_backend().lower() not in (
        "agg",
        "pdf",
        "svg",
        "module://matplotlib_inline.backend_inline",
    ):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: start-up (see tests/test_imports.py)

    from pcatools.figures.style import figure_style  # deferred: start-up (see tests/test_imports.py)

    with figure_style():  # the same picture whatever the process's rcParams hold
        if not cases:
            raise ValueError("plot_cases: expected at least one Case, found none")
        n = len(cases)
        sx, sy, sz = cases[0].spacing
        aspect = sz / sx
        fig, axes = plt.subplots(1, 2 * n, figsize=(2.15 * 2 * n, 5.4))
        for k, case in enumerate(cases):
            ax_pet, ax_ct = axes[2 * k], axes[2 * k + 1]
            ax_pet.imshow(
                _coronal(case.pet.max(axis=1)),
                cmap="gray_r",
                vmin=0,
                vmax=suv_max,
                aspect=aspect,
                interpolation="nearest",
            )
            n_les, j_lesion = largest_lesion_slice(case.label)
            if case.label is not None and n_les:
                ax_pet.contour(_coronal(case.label.max(axis=1)), levels=[0.5], colors="red", linewidths=0.7)
            j = case.ct.shape[1] // 2 if j_lesion is None else j_lesion
            ax_ct.imshow(
                _coronal(case.ct[:, j, :]),
                cmap="gray",
                vmin=ct_window[0],
                vmax=ct_window[1],
                aspect=aspect,
                interpolation="nearest",
            )
            if case.label is not None and case.label[:, j, :].any():
                ax_ct.contour(_coronal(case.label[:, j, :]), levels=[0.5], colors="red", linewidths=0.7)
            ax_pet.set_title(f"{case.case_id}\nPET MIP, {n_les} lesion{'s' if n_les != 1 else ''}", fontsize=8)
            ax_ct.set_title(f"CT, coronal\ny = {case.affine[1, 3] + j * case.affine[1, 1]:.0f} mm", fontsize=8)
            for ax in (ax_pet, ax_ct):
                ax.set_xticks([])
                ax.set_yticks([])
        fig.suptitle(
            f"Synthetic PSMA PET/CT phantom ({sx:g} mm; PET SUV 0-{suv_max:g}, CT {ct_window[0]:g} to "
            f"{ct_window[1]:g} HU; red: lesion masks)",
            fontsize=9,
        )
        fig.tight_layout()
        plt.close(fig)
        return fig


def save_overview(
    path: str | os.PathLike[str],
    seeds: Sequence[int] = (0, 1, 2, 3),
    cohort_seed: int = 0,
    spacing: float = 4.0,
    dpi: int = 80,
) -> None:
    """Render cases ``(cohort_seed, i)`` for ``i`` in ``seeds`` and save :func:`plot_cases` to ``path`` (atomically)."""

    cases = [make_case((cohort_seed, i), spacing=(spacing,) * 3, case_id=case_id_for(i, 380)) for i in seeds]
    from pcatools.figures.style import figure_style  # deferred: start-up (see tests/test_imports.py)

    with figure_style(), atomic_path(path) as tmp:
        plot_cases(cases).savefig(tmp, dpi=dpi)


if __name__ == "__main__":  # pragma: no cover
    save_overview(sys.argv[1] if len(sys.argv) > 1 else "docs/figures/phantom.png")
