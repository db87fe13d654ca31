"""User code named by a string: ``NAME=SPEC``, with SPEC ``package.module:attr`` or ``path/to/file.py:attr``.

A user's own loss or network enters pcatools through a command-line option or a YAML
value, so it is named by text rather than imported by pcatools' own code; this module turns that
text into the object and into the record of where it came from (:func:`spec_source`), so that a
run can refuse to continue after the code changed.

* ``parse_spec("tversky=my_losses.py:TverskyLoss")``: the name and the target, checked for form;
* :func:`load_spec`: the object (a class or a factory), the file imported once per content;
* :func:`spec_source`: ``{"spec", "file", "sha256"}`` for a file, or the distribution and version
  of an installed package (``{"spec", "module", "package", "version"}``);
* :func:`source_change`: what changed between two such records, for the refusal to resume.

Every failure is a :class:`SpecError` (a ``ValueError``) whose one-line message starts with
``<what> NAME=SPEC:`` and says what was expected and what was found.

Examples
--------
>>> s = parse_spec("tversky=my_losses.py:TverskyLoss")
>>> s.name, s.file, s.attr
('tversky', 'my_losses.py', 'TverskyLoss')
>>> parse_spec("mine=my_pkg.losses:Mine").module
'my_pkg.losses'
>>> parse_spec("mine=my_losses.py")
Traceback (most recent call last):
...
pcatools.specs.SpecError: loss mine=my_losses.py: expected NAME=package.module:attr or NAME=path/to/file.py:attr
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Spec", "SpecError", "is_spec", "load_spec", "parse_spec", "source_change", "spec_source"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FILES: dict[tuple[str, str], Any] = {}  # (absolute path, sha256) -> the module imported from it


class SpecError(ValueError):
    """A spec that does not name usable code: the message names the spec, what was expected and found."""


@dataclass(frozen=True)
class Spec:
    """A parsed ``NAME=SPEC``: ``name`` (or ``None``), and ``module`` or ``file``, and ``attr``."""

    name: str | None
    target: str
    module: str | None
    file: str | None
    attr: str
    what: str = "loss"

    @property
    def text(self) -> str:
        """The spec as the user wrote it (``NAME=SPEC``), for messages."""
        return f"{self.name}={self.target}" if self.name else self.target

    def fail(self, found: str) -> SpecError:
        """A :class:`SpecError` ``<what> NAME=SPEC: found``."""
        return SpecError(f"{self.what} {self.text}: {found}")


def is_spec(text: str) -> bool:
    """Whether ``text`` names user code (``NAME=SPEC`` or a bare ``SPEC`` with ``:``), not a registered name."""
    return "=" in text or ":" in text


def parse_spec(text: str, what: str = "loss", *, need_name: bool = True) -> Spec:
    """``NAME=package.module:attr`` or ``NAME=path/to/file.py:attr`` -> :class:`Spec` (form only, nothing imported).

    ``need_name=False`` also takes a bare ``SPEC`` (a name given apart, as in ``register_loss``).
    """
    raw = str(text).strip()
    name: str | None = None
    target = raw
    if "=" in raw:
        name, target = (part.strip() for part in raw.split("=", 1))
        if not _NAME.match(name):
            raise SpecError(f"{what} {raw}: {name!r} is not a name (letters, digits, _ . -)")
    elif need_name:
        raise SpecError(f"{what} {raw}: expected NAME=SPEC, e.g. tversky=my_losses.py:TverskyLoss")
    form = "expected NAME=package.module:attr or NAME=path/to/file.py:attr"
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not all(a.isidentifier() for a in attr.split(".")):
        raise SpecError(f"{what} {raw}: {form}")
    if where.endswith(".py"):
        return Spec(name, target, None, where, attr, what)
    if not _MODULE.match(where):
        raise SpecError(f"{what} {raw}: {form}")
    return Spec(name, target, where, None, attr, what)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _import_file(spec: Spec) -> Any:
    path = Path(str(spec.file)).expanduser()
    if not path.is_file():
        raise spec.fail(f"file {spec.file} not found (from {Path.cwd()})")
    full = str(path.resolve())
    digest = _sha256(path)
    if (full, digest) in _FILES:
        return _FILES[(full, digest)]
    mod_name = f"pcatools_user_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest[:12]}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, full)
    if loader_spec is None or loader_spec.loader is None:
        raise spec.fail(f"{spec.file} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look their module up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[mod_name]
        raise spec.fail(f"importing {spec.file} failed ({type(err).__name__}: {err})") from None
    _FILES[(full, digest)] = module
    return module


def load_spec(spec: Spec | str, what: str = "loss") -> Any:
    """The object a spec names, checked to be callable (a class or a factory).

    A file is imported under a name made of its stem and content hash, once per content: loading
    the same unchanged file twice gives the same class.
    """
    s = spec if isinstance(spec, Spec) else parse_spec(spec, what, need_name=False)
    if s.file is not None:
        obj = _import_file(s)
        where = s.file
    else:
        try:
            obj = importlib.import_module(str(s.module))
        except ModuleNotFoundError as err:
            raise s.fail(f"no module named {err.name!r} (not installed, or not on sys.path)") from None
        except Exception as err:
            raise s.fail(f"importing {s.module} failed ({type(err).__name__}: {err})") from None
        where = str(s.module)
    for part in s.attr.split("."):
        if not hasattr(obj, part):
            raise s.fail(f"{where} has no attribute {s.attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise s.fail(f"{s.attr} is a {type(obj).__name__}, expected a class or a factory (callable)")
    return obj


def spec_source(spec: Spec | str, what: str = "loss") -> dict[str, str]:
    """Where a spec's code comes from, for the run folder: a file's SHA-256, or a package's version.

    ``{"spec", "file", "sha256"}`` for ``file.py:attr`` (the absolute path) and for a module that
    no installed distribution provides; ``{"spec", "module", "package", "version"}`` for a module
    of an installed distribution.
    """
    s = spec if isinstance(spec, Spec) else parse_spec(spec, what, need_name=False)
    if s.file is not None:
        path = Path(s.file).expanduser()
        if not path.is_file():
            raise s.fail(f"file {s.file} not found (from {Path.cwd()})")
        return {"spec": s.text, "file": str(path.resolve()), "sha256": _sha256(path)}
    top = str(s.module).split(".")[0]
    dists = importlib.metadata.packages_distributions().get(top, [])
    if dists:
        return {
            "spec": s.text,
            "module": str(s.module),
            "package": dists[0],
            "version": importlib.metadata.version(dists[0]),
        }
    load_spec(s, what)
    file = getattr(sys.modules.get(str(s.module)), "__file__", None)
    if file is None:
        return {"spec": s.text, "module": str(s.module)}
    return {"spec": s.text, "file": str(Path(file).resolve()), "sha256": _sha256(Path(file))}


def source_change(old: Mapping[str, str] | None, new: Mapping[str, str] | None, what: str = "loss") -> str:
    """What changed in a spec's code between two :func:`spec_source` records ("" if nothing).

    One wording for every kind of user code (``what``: ``loss``, ``network``), so that a run refuses
    a changed loss and a changed network alike.

    Examples
    --------
    >>> source_change({"spec": "u=a.py:U", "file": "/x/a.py", "sha256": "ab" * 32},
    ...               {"spec": "u=a.py:U", "file": "/x/a.py", "sha256": "cd" * 32}, "network")
    'network u=a.py:U from /x/a.py (sha256 abababababab), which has changed since (sha256 now cdcdcdcdcdcd)'
    """
    if not old or dict(old) == dict(new or {}):
        return ""
    spec, new = old.get("spec", "?"), dict(new or {})
    if "sha256" in old:
        now = f"sha256 now {new['sha256'][:12]}" if "sha256" in new else f"now {new or f'no user {what}'}"
        where = old.get("file", "?")
        return f"{what} {spec} from {where} (sha256 {old['sha256'][:12]}), which has changed since ({now})"
    if "version" in old:
        now = f"now {new.get('package')} {new.get('version')}" if new else f"now no user {what}"
        return f"{what} {spec} from package {old.get('package')} {old['version']}, which has changed since ({now})"
    return f"{what} {spec} ({dict(old)}), which has changed since (now {new})"
