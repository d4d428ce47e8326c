"""The translator as a local HTTP service.

``create_app(translator)`` returns a FastAPI app (OpenAPI docs at ``/docs``):

- ``POST /translate`` ``{"text": "..."} or {"lines": [...]}, "from": "ja", "to": "en"`` →
  ``{"translations": [...], "warnings": [...], "model": ..., "from": ..., "to": ...}`` (``text`` gives
  one translation; ``lines`` one per line, order kept, empty lines empty);
- ``GET /health`` the model and the directions it serves.

Errors are JSON ``{"detail": ..., "hint": ...}``: a ``CasebookError`` (unknown language code, a
direction the model does not serve) 400; a body that is not valid (both or neither of text/lines,
too many lines, wrong types) 422.

One lock around the model: a torch module and its decoding buffers are not promised to be safe
under concurrent forwards, and on a CPU box parallel decodes only fight over the same cores.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..core.errors import CasebookError
from .translator import Translator

MAX_LINES = 1000
MAX_CHARS = 20_000


class TranslateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    text: str | None = Field(None, max_length=MAX_CHARS, description="one text (a sentence or a few)")
    lines: list[str] | None = Field(None, max_length=MAX_LINES, description="several sentences, one per item")
    src: str = Field(alias="from", min_length=1, max_length=16, description="source language code: ja en de fr cs")
    tgt: str = Field(alias="to", min_length=1, max_length=16, description="target language code")

    @model_validator(mode="after")
    def one_input(self) -> TranslateIn:
        if (self.text is None) == (self.lines is None):
            raise ValueError("give exactly one of 'text' or 'lines'")
        if self.lines is not None and any(len(line) > MAX_CHARS for line in self.lines):
            raise ValueError(f"a line is longer than {MAX_CHARS} characters")
        return self


class TranslateOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    translations: list[str]
    warnings: list[str]
    model: str
    src: str = Field(serialization_alias="from")
    tgt: str = Field(serialization_alias="to")


class HealthOut(BaseModel):
    status: str
    arch: str
    directions: list[str]
    languages: list[str]


class ErrorOut(BaseModel):
    detail: str
    hint: str | None = None


def create_app(translator: Translator) -> FastAPI:
    lock = threading.Lock()
    app = FastAPI(title="mlcasebook translator", version="1",
                  description=f"Translation with a **{translator.arch}** model ({translator.describe()}).")
    app.state.translator = translator

    @app.exception_handler(CasebookError)
    async def casebook_error(_request: Request, exc: CasebookError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.post("/translate", response_model=TranslateOut, response_model_by_alias=True,
              responses={400: {"model": ErrorOut, "description": "unknown language or direction"}},
              summary="Translate a text or a list of lines")
    def translate(body: TranslateIn) -> dict[str, Any]:
        lines = [body.text] if body.text is not None else body.lines
        with lock:
            translations, warnings = translator.translate_report(lines, body.src, body.tgt)
        return {"translations": translations, "warnings": warnings, "model": translator.arch,
                "src": body.src.strip().lower(), "tgt": body.tgt.strip().lower()}

    @app.get("/health", response_model=HealthOut, summary="The model and its directions")
    def health() -> dict[str, Any]:
        return {"status": "ok", "arch": translator.arch, "languages": translator.languages,
                "directions": [f"{a}-{b}" for a, b in translator.directions]}

    return app


def run(model_path: Path | str, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve a saved model with uvicorn (one worker: the model lives in this process)."""
    import uvicorn

    app = create_app(Translator.load(model_path))
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)
