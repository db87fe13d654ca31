"""Tissue classes of the phantom: CT attenuation (HU) and PSMA PET uptake (SUVbw) per tissue.

Every voxel of a phantom belongs to one tissue class (an ``uint8`` code, :data:`TISSUES`). A class
gives the CT value (mean and noise SD in HU) and the PET uptake (SUVbw, before the scanner blur)
of a typical patient; :func:`pcatools.data.phantom.anatomy.draw_anatomy` varies the uptake per
patient (a lognormal factor with the class's ``suv_cv``).

PET uptake (SUVbw, about 2 h after [18F]DCFPyL, the paper's tracer; values are approximate):

=====================  ==============  ===============================================================
tissue                 SUV used        source / reading
=====================  ==============  ===============================================================
kidney (cortex)        20 (CV 0.23)    Li et al. 2017, whole kidney SUVmean 20.1 +/- 4.6 and 19.4 +/- 4.5
parotid gland          9 (CV 0.23)     Li et al. 2017, 9.1 +/- 2.0
submandibular gland    9.5 (CV 0.23)   Li et al. 2017, 9.6 +/- 2.3
lacrimal gland         6.5 (CV 0.27)   Li et al. 2017, 6.6 +/- 1.8
liver                  5 (CV 0.14)     Li et al. 2017, 5.0 +/- 0.7
spleen                 4 (CV 0.35)     Li et al. 2017, 4.0 +/- 1.5
small bowel            5 (CV 0.35)     "moderate" intestinal uptake, Hofman et al. 2018 (our value)
urine: bladder         30 (CV 0.6)     very variable urinary excretion (our value, range ~10-80)
urine: renal pelvis    15, ureter 4    urinary activity in the collecting system (our values)
blood pool             1.5             aorta / heart, low (our value; DCFPyL blood pool ~1-2)
muscle                 0.7             low (our value)
bone marrow / cortex   1.0 / 0.5       low (our value)
colon                  1.5             low (our value)
lung, fat              0.35, 0.25      low (our value)
brain                  0.15            negligible uptake (our value)
=====================  ==============  ===============================================================

Sources: X. Li et al., "Semiquantitative parameters in PSMA-targeted PET imaging with
18F-DCFPyL: variability in normal-organ uptake", J Nucl Med 58 (2017) 942-946 (65 scans, SUVmean
normalised to body weight); M. S. Hofman et al., "Prostate-specific membrane antigen PET:
clinical utility in prostate cancer, normal patterns, pearls, and pitfalls", RadioGraphics 38
(2018) 200-217 (the pattern: kidneys, salivary glands and bladder high; liver, spleen and bowel
moderate; blood pool, muscle and bone low). Values marked "our value" are round numbers chosen
to give that pattern, not measurements.

CT (non-contrast, 120 kV; mean HU, SD in brackets): air -1000 (8), subcutaneous / visceral fat
-100 / -90 (15), lung -850 (40), muscle 45 (12), liver 55 (10), spleen 45 (10), kidney 32 (10),
urine 5 (8), blood 40 (10), brain 35 (8), parotid 0 (20; fatty), submandibular 40 (12), trabecular
bone 250 (40), cortical bone 900 (80), fatty marrow -50 (20), bowel content 25 (20), colon gas -850
(50). These are the usual textbook ranges of unenhanced CT (e.g. liver 50-65, spleen 40-50,
kidney 30-40, muscle 40-50, fat -120 to -80, lung -900 to -700); approximate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tissue:
    """One tissue class: CT mean / noise SD in HU, PET uptake in SUVbw and its between-patient CV."""

    code: int
    name: str
    hu: float
    hu_sd: float
    suv: float
    suv_cv: float = 0.15


_TABLE = [
    Tissue(0, "air", -1000.0, 8.0, 0.0, 0.0),
    Tissue(1, "fat", -100.0, 15.0, 0.25),
    Tissue(2, "muscle", 45.0, 12.0, 0.7),
    Tissue(3, "visceral_fat", -90.0, 15.0, 0.3),
    Tissue(4, "lung", -850.0, 40.0, 0.35),
    Tissue(5, "bone", 250.0, 40.0, 1.0),
    Tissue(6, "cortical_bone", 900.0, 80.0, 0.5),
    Tissue(7, "brain", 35.0, 8.0, 0.15),
    Tissue(8, "liver", 55.0, 10.0, 5.0, 0.14),
    Tissue(9, "spleen", 45.0, 10.0, 4.0, 0.35),
    Tissue(10, "kidney", 32.0, 10.0, 20.0, 0.23),
    Tissue(11, "renal_pelvis", 5.0, 8.0, 15.0, 0.4),
    Tissue(12, "bladder", 5.0, 8.0, 30.0, 0.6),
    Tissue(13, "small_bowel", 25.0, 20.0, 5.0, 0.35),
    Tissue(14, "colon", 25.0, 20.0, 1.5, 0.3),
    Tissue(15, "bowel_gas", -850.0, 50.0, 0.2),
    Tissue(16, "blood", 40.0, 10.0, 1.5, 0.2),
    Tissue(17, "parotid", 0.0, 20.0, 9.0, 0.23),
    Tissue(18, "submandibular", 40.0, 12.0, 9.5, 0.23),
    Tissue(19, "lacrimal", 40.0, 10.0, 6.5, 0.27),
    Tissue(20, "csf", 10.0, 8.0, 0.1),
    Tissue(21, "fatty_marrow", -50.0, 20.0, 0.5),
    Tissue(22, "ureter", 5.0, 8.0, 4.0, 0.5),
    Tissue(23, "stomach", 30.0, 15.0, 1.5, 0.3),
    Tissue(24, "lesion", 40.0, 12.0, 0.0, 0.0),
    Tissue(25, "airway", -950.0, 30.0, 0.0, 0.0),
]

TISSUES: dict[str, Tissue] = {t.name: t for t in _TABLE}
"""Tissue classes by name; ``TISSUES[name].code`` is the value in the tissue map."""

CODE: dict[str, int] = {t.name: t.code for t in _TABLE}
"""Tissue code by name."""

N_TISSUES = len(_TABLE)
"""Number of tissue classes (codes ``0 .. N_TISSUES - 1``)."""

HU_MEAN = np.array([t.hu for t in _TABLE], dtype=np.float32)
"""Mean CT value (HU) of each tissue class, indexed by code."""
HU_SD = np.array([t.hu_sd for t in _TABLE], dtype=np.float32)
"""Voxel noise SD (HU) of each tissue class's CT, indexed by code."""
SUV_MEAN = np.array([t.suv for t in _TABLE], dtype=np.float64)
"""Mean SUV of each tissue class, indexed by code."""
SUV_CV = np.array([t.suv_cv for t in _TABLE], dtype=np.float64)
"""Between-patient coefficient of variation of each tissue class's SUV (its lognormal factor), indexed by code."""

assert all(t.code == i for i, t in enumerate(_TABLE))
