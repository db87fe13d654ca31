"""mkdocs hook: the notebooks of ``notebooks/`` as pages ``notebooks/NN_name/`` of the site.

The notebooks stay where JupyterLab and the tests open them (``notebooks/``, outside ``docs/``);
this hook adds each ``.ipynb`` to the site's files before mkdocs-jupyter turns them into pages,
so that the site shows them without a second copy in ``docs/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

#: the repository root (mkdocs.yml's folder): ``notebooks/`` is read from here
ROOT = Path(__file__).resolve().parents[2]


@event_priority(100)  # before mkdocs-jupyter's on_files, which makes the .ipynb files pages
def on_files(files: Files, config: Any) -> Files:
    """Add every ``notebooks/*.ipynb`` under the site path ``notebooks/`` (their source stays in place)."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(
            File(
                f"notebooks/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
