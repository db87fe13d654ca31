"""The detection criterion as one typed value (issue 27 item 4): checked once where it enters, carried
as a :class:`~pcatools.metrics.detection.Criterion`, and returned by the evaluation as the rule it used.

On the built cohort of tests/test_evaluate.py (hand-computed counts there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pcatools.metrics.evaluate as metrics_evaluate
from pcatools.evaluation import evaluate_folders, load_evaluation
from pcatools.metrics.detection import CRITERIA, Criterion, detect
from pcatools.metrics.evaluate import evaluate_case, evaluate_cohort_tables
from tests.test_evaluate import DSC, LESIONS, SHAPE, _cli, make_cohort

REFUSED = "criterion: expected one of ('suvmax', 'overlap', 'iou', 'suvmax_iou'), found 'nope'"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("criterion"))


def _folders(cohort: Path) -> dict[str, Any]:
    return {"gt": cohort / "dataset" / "labelsTs", "pred": {m: cohort / "preds" / m for m in DSC}}


def test_the_names_are_the_types_values() -> None:
    assert CRITERIA == tuple(c.value for c in Criterion) == ("suvmax", "overlap", "iou", "suvmax_iou")
    assert (
        Criterion.parse("suvmax_iou") is Criterion.SUVMAX_IOU
        and Criterion.parse(Criterion.IOU) is Criterion.IOU
    )
    # a str: equal to its name, written and quoted as its name, found under it in a dict
    assert Criterion.OVERLAP == "overlap" and f"{Criterion.OVERLAP}" == str(Criterion.OVERLAP) == "overlap"
    assert repr(Criterion.OVERLAP) == "'overlap'" and {"overlap": 1}[Criterion.OVERLAP] == 1
    assert [c.needs_suv for c in Criterion] == [True, False, False, True]


def test_a_bad_criterion_is_refused_with_one_line_wherever_it_enters(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, text = _cli("evaluate", str(out), "--gt", str(cohort / "dataset" / "labelsTs"),
                      "--pred", f"a={cohort / 'preds' / 'extra'}", "--criterion", "nope", "--workers", "0",
                      "--no-progress")  # fmt: skip
    assert (code, text) == (1, f"error: {REFUSED}\n")
    assert not out.exists()
    entries = [
        lambda: evaluate_folders(out, **_folders(cohort), criterion="nope", workers=0, progress=False),
        lambda: evaluate_cohort_tables(_manifest(cohort), criterion="nope"),
        lambda: evaluate_case(np.zeros(SHAPE), np.zeros(SHAPE), criterion="nope"),
        lambda: detect(None, criterion="nope"),  # type: ignore[arg-type]  # refused before reading the masks
    ]
    for entry in entries:
        with pytest.raises(ValueError) as err:
            entry()
        assert str(err.value) == REFUSED
    assert not out.exists()


def test_checked_once_then_carried_as_a_criterion(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name given is parsed once; every inner function receives the Criterion itself."""
    parsed: list[Any] = []
    real_parse = Criterion.parse.__func__  # type: ignore[attr-defined]

    def parse(cls: type[Criterion], value: Any) -> Criterion:
        parsed.append(value)
        return real_parse(cls, value)  # type: ignore[no-any-return]

    inner: list[Any] = []
    real_evaluate = metrics_evaluate._evaluate

    def evaluate(comp: Any, suv: Any, criterion: Any, *args: Any, **kwargs: Any) -> Any:
        inner.append(criterion)
        return real_evaluate(comp, suv, criterion, *args, **kwargs)

    monkeypatch.setattr(Criterion, "parse", classmethod(parse))
    monkeypatch.setattr(metrics_evaluate, "_evaluate", evaluate)
    tables = evaluate_cohort_tables(_manifest(cohort), criterion="iou", workers=0, progress=False)
    assert [v for v in parsed if not isinstance(v, Criterion)] == ["iou"]
    assert len(inner) == 4 * len(DSC) and all(c is Criterion.IOU for c in inner)
    assert tables.criterion is Criterion.IOU and set(tables.cases["criterion"]) == {"iou"}


def _manifest(cohort: Path) -> pd.DataFrame:
    suffix = {"merged": "_seg"}
    return pd.DataFrame(
        [
            {
                "case_id": case, "model": model, "label": str(cohort / "dataset" / "labelsTs" / f"{case}.nii.gz"),
                "pet": str(cohort / "dataset" / "imagesTs" / f"{case}_0001.nii.gz"),
                "pred": str(cohort / "preds" / model / f"{case}{suffix.get(model, '')}.nii.gz"),
            }
            for case in LESIONS
            for model in DSC
        ]
    )  # fmt: skip


def test_the_result_says_which_criterion_was_used(cohort: Path, tmp_path: Path) -> None:
    with_suv = evaluate_folders(
        tmp_path / "suv", **_folders(cohort), suv=cohort / "dataset" / "imagesTs", workers=0, progress=False,
        figures=False,
    )  # fmt: skip
    assert with_suv.criterion is Criterion.SUVMAX
    with pytest.warns(UserWarning, match="needs PET"):
        without = evaluate_folders(
            tmp_path / "plain", **_folders(cohort), workers=0, progress=False, figures=False
        )
    assert without.criterion is Criterion.OVERLAP
    # the folder read back says so too
    assert load_evaluation(tmp_path / "plain").criterion is Criterion.OVERLAP
    # hand-counted under the overlap rule: the bridge joins P003's two lesions into one component (1 TP,
    # no FN, where the SUVmax rule counts 2 TP); the extra cube is an FP
    cases = without.cases.set_index(["model", "case_id"])
    assert tuple(cases.loc[("merged", "P003"), ["tp", "fp", "fn"]]) == (1, 0, 0)
    assert tuple(cases.loc[("extra", "P001"), ["tp", "fp", "fn"]]) == (1, 1, 0)
    # the command says which rule it used, from the evaluation's result
    code, text = _cli("evaluate", str(tmp_path / "cli"), "--gt", str(cohort / "dataset" / "labelsTs"),
                      "--pred", f"a={cohort / 'preds' / 'extra'}", "--workers", "0", "--no-progress")  # fmt: skip
    assert code == 0, text
    assert text.splitlines()[0] == "note: without --suv, detection used the 'overlap' rule"
