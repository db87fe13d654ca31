"""Patient- and lesion-level metrics of the paper (2.7) and of the autoPET challenge.

Modules: :mod:`~pcatools.metrics.components` (checks, 18-connected labelling, overlap table),
:mod:`~pcatools.metrics.overlap` (DSC, eq. 13 and 16), :mod:`~pcatools.metrics.detection`
(TP/FP/FN criteria, F1 eq. 14), :mod:`~pcatools.metrics.burden` (MTV, TMTV, TLA, SUV statistics),
:mod:`~pcatools.metrics.dmax` (eq. 15), :mod:`~pcatools.metrics.autopet` (FPV, FNV, Dice),
:mod:`~pcatools.metrics.panoptic` (RQ, SQ, PQ) and
:mod:`~pcatools.metrics.evaluate` (``evaluate_case``, ``lesion_table``, ``component_table``,
``evaluate_cohort``, ``evaluate_cohort_tables``).
Definitions, edge cases and choices: ``docs/metrics.md``.
"""

from __future__ import annotations

from pcatools.metrics.autopet import (
    autopet_from_components,
    autopet_metrics,
    false_negative_volume,
    false_positive_volume,
)
from pcatools.metrics.burden import lesion_suv, mtv_ml, tla, tmtv_ml
from pcatools.metrics.components import (
    CONNECTIVITIES,
    CONNECTIVITY,
    Components,
    components,
    label_components,
    scenario,
    voxel_volume_ml,
)
from pcatools.metrics.detection import CRITERIA, Detection, detect, f1_score
from pcatools.metrics.dmax import dmax, dmax_bruteforce, dmax_points, max_pairwise_distance, voxel_distance
from pcatools.metrics.evaluate import (
    CASE_COLUMNS,
    COMPONENT_COLUMNS,
    LESION_COLUMNS,
    PANOPTIC_COLUMNS,
    CohortTables,
    component_table,
    evaluate_case,
    evaluate_cohort,
    evaluate_cohort_tables,
    lesion_table,
    read_mask,
)
from pcatools.metrics.overlap import LESION_DICE_READINGS, dice, dice_from_counts, lesion_dice
from pcatools.metrics.panoptic import Panoptic, panoptic_quality

__all__ = [
    "CASE_COLUMNS",
    "COMPONENT_COLUMNS",
    "CONNECTIVITIES",
    "CONNECTIVITY",
    "CRITERIA",
    "LESION_COLUMNS",
    "LESION_DICE_READINGS",
    "PANOPTIC_COLUMNS",
    "CohortTables",
    "Components",
    "Detection",
    "Panoptic",
    "autopet_from_components",
    "autopet_metrics",
    "component_table",
    "components",
    "detect",
    "dice",
    "dice_from_counts",
    "dmax",
    "dmax_bruteforce",
    "dmax_points",
    "evaluate_case",
    "evaluate_cohort",
    "evaluate_cohort_tables",
    "f1_score",
    "false_negative_volume",
    "false_positive_volume",
    "label_components",
    "lesion_dice",
    "lesion_suv",
    "lesion_table",
    "max_pairwise_distance",
    "mtv_ml",
    "panoptic_quality",
    "read_mask",
    "scenario",
    "tla",
    "tmtv_ml",
    "voxel_distance",
    "voxel_volume_ml",
]
