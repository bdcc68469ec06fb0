"""Uploads: the body size limit (before and while reading), safe names, and storing the file."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import HTTPException, UploadFile
from fastapi.responses import JSONResponse


class UploadLimit:
    """Refuse bodies over ``limit`` bytes with 413: by Content-Length before reading, else while reading."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length and length.isdigit() and int(length) > self.limit:
            return await JSONResponse({"detail": self._message()}, status_code=413)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, self._message())
            return message

        return await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"upload larger than the server's limit of {self.limit / 1024 / 1024:.0f} MB"


def safe_filename(name: str | None) -> str:
    """A base name safe to create in the job's folder: no directories, no odd characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = re.sub(r"[^A-Za-z0-9._ -]", "_", stem).strip(" .")[:100] or "upload"
    suffix = re.sub(r"[^A-Za-z0-9]", "", suffix)[:10]
    return f"{stem}.{suffix}" if suffix else stem


def save_upload(file: UploadFile, target: Path) -> None:
    with open(target, "wb") as out:
        while block := file.file.read(1 << 20):
            out.write(block)
