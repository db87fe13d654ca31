"""The documentation site (mkdocs.yml) and the paths the docs may name.

Known answers: ``mkdocs build --strict`` passes without importing pcatools, torch or MONAI; every
page of ``docs/`` and every notebook of ``notebooks/`` becomes a page, the notebooks shown as stored
(not executed); the docs tools installed are the versions ``constraints.txt`` pins; no docstring or
doc names a path outside the repository (``../shared``), which a user's clone does not have.
"""

from __future__ import annotations

import html
import importlib.metadata
import json
import re

from tests.conftest import REPO
from tests.docs_site import built_site, require_mkdocs

#: the docs tools of the ``dev`` extra and the griffe that reads the source for them
DOCS_TOOLS = (
    "mkdocs",
    "mkdocs-material",
    "mkdocstrings",
    "mkdocstrings-python",
    "mkdocs-jupyter",
    "griffelib",
)

#: what a path outside the repository looks like in a docstring or doc
OUTSIDE = re.compile(r"\.\./shared|shared/data")


def test_strict_build_passes_without_importing_pcatools_or_torch() -> None:
    require_mkdocs()
    site = built_site()
    assert site.ok, site.log
    assert site.heavy == []  # griffe read the source statically


def test_every_doc_page_is_built() -> None:
    require_mkdocs()
    site = built_site().path
    pages = sorted(p.relative_to(REPO / "docs") for p in (REPO / "docs").rglob("*.md"))
    assert len(pages) >= 20
    for page in pages:
        url = page.with_suffix("") if page.name != "index.md" else page.parent
        assert (site / url / "index.html").is_file(), f"docs/{page} has no page in the site"


def test_notebooks_are_rendered_as_stored() -> None:
    require_mkdocs()
    site = built_site().path
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 11
    for notebook in notebooks:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        page = (site / "notebooks" / notebook.stem / "index.html").read_text(encoding="utf-8")
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        code = next(c for c in cells if c["cell_type"] == "code")
        first_line = "".join(code["source"]).splitlines()[0].strip()
        assert first_line in text, f"{notebook.name}: its first code line is not on its page"
        # every code cell shown, each without outputs where the stored notebook has none (not executed)
        code_cells = [c for c in cells if c["cell_type"] == "code"]
        shown = re.findall(r'class="jp-Cell jp-CodeCell ([^"]*)" id="cell-id=', page)
        assert len(shown) == len(code_cells), notebook.name
        assert sum("jp-mod-noOutputs" in s for s in shown) == sum(not c.get("outputs") for c in code_cells)


def test_docs_tools_are_the_pinned_versions() -> None:
    require_mkdocs()
    pins = dict(
        line.strip().split("==")
        for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    for tool in DOCS_TOOLS:
        assert pins[tool] == importlib.metadata.version(tool), tool
    dev = (REPO / "pyproject.toml").read_text(encoding="utf-8").split("dev = [", 1)[1].split("]", 1)[0]
    for tool in ("mkdocs", "mkdocs-material", "mkdocstrings-python", "mkdocs-jupyter"):
        assert f'"{tool}>=' in dev, f"the dev extra does not install {tool}"


def test_no_docstring_or_doc_names_a_path_outside_the_repository() -> None:
    files = [*(REPO / "pcatools").rglob("*.py"), *(REPO / "docs").rglob("*.md"), REPO / "mkdocs.yml"]
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def test_the_outside_path_check_finds_such_a_line() -> None:
    assert OUTSIDE.search('>>> img = dicom_pet_to_suv("../shared/data/suv-dro/DRO_0_0/PT")')
    assert OUTSIDE.search("On `shared/data/autopet-psma-sample` they equal")
    assert not OUTSIDE.search("the SUV DROs of oncoray/suv_computation")
