"""The error of bad input data, shared by every reader in :mod:`pcatools.data`."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: the message names the file(s), what was expected and what was found."""
