"""Synthetic whole-body PSMA PET/CT phantom: one case (:func:`make_case`) or a cohort on disk (:func:`make_cohort`).

The package, one concept per module:

- :mod:`~pcatools.data.phantom.tissues`: CT HU and PSMA SUV per tissue class (with sources);
- :mod:`~pcatools.data.phantom.geometry`: grid, patient frame, ellipsoids and capsules;
- :mod:`~pcatools.data.phantom.anatomy`: the body (organs, skeleton) and its per-patient variation;
- :mod:`~pcatools.data.phantom.lesions`: lesion parameter draws matching the paper's cohort (2.1);
- :mod:`~pcatools.data.phantom.placement`: lesion sites and hard negatives, in mm;
- :mod:`~pcatools.data.phantom.render`: CT / PET / mask rendering, PSF, noise, SUVmax calibration;
- :mod:`~pcatools.data.phantom.cohort`: cohorts on disk (layouts, manifest, resume, processes);
- :mod:`~pcatools.data.phantom.figure`: the overview figure (PET MIP beside a CT slice).

See ``docs/phantom.md`` for the value ranges, sources and tolerances.
"""

from pcatools.data.phantom.cohort import make_cohort
from pcatools.data.phantom.lesions import PAPER, CohortStats, draw_lesions, lesion_count_pmf
from pcatools.data.phantom.render import make_case

__all__ = ["PAPER", "CohortStats", "draw_lesions", "lesion_count_pmf", "make_case", "make_cohort"]
