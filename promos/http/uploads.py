"""Reading an uploaded file as text lines, without loading it whole."""

from __future__ import annotations

import io
from collections.abc import Iterator

from fastapi import UploadFile


def text_lines(upload: UploadFile) -> Iterator[str]:
    """The upload's lines, decoded as UTF-8 (a byte-order mark is dropped)."""
    # python-multipart spools the upload to a temporary file; it is read a line at a time.
    stream = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
    try:
        yield from stream
    finally:
        stream.detach()
