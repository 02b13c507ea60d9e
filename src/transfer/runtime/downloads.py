"""Downloads that fail as one line naming the offline way forward."""

from __future__ import annotations

import contextlib
import urllib.error
from collections.abc import Iterator

from transfer.runtime.errors import UserError


@contextlib.contextmanager
def downloading(what: str, offline: str) -> Iterator[None]:
    """Turn a failed download inside the block into a one-line UserError that names `what`
    and the `offline` way forward.

    Keras's `get_file` raises a bare `Exception("URL fetch failure ...")` with the urllib
    error as its context; any exception with a URLError in its chain counts.
    """
    try:
        yield
    except Exception as e:
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, urllib.error.URLError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise UserError(f"cannot download {what} ({cause.reason}); offline, use {offline}") from e
