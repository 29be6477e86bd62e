"""The one exception the data-set loaders raise for bad, missing or hostile files."""

from __future__ import annotations

from tdsnn.errors import TDSNNError


class DatasetError(TDSNNError, ValueError):
    """A data-set file or folder is missing, malformed, truncated or untrusted.

    A ``ValueError`` (bad input data) and a ``TDSNNError`` (raised on purpose by tdsnn), so
    callers can catch either.  Messages name the offending file and what was expected.
    """
