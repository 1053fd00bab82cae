"""`lakeforge serve`: the champion over HTTP, with no Spark and no JVM.

    POST /predict   one record (a JSON object of the silver columns the
                    model reads; a column the dataset's `privacy:` block
                    protects is sent in clear and protected here, as ingest
                    did, before it is scored or logged) or a list of them;
                    the prediction, class probabilities, model name and
                    version
    GET  /health    the model in service, reloads, the inference log's counts
    GET  /metadata  the inputs (name and kind), model version, training run,
                    parity with Spark at training

A bad record is a 422 naming the field (wrong type, unknown field, a
category the model refuses); more records than `max_batch` is a 413. The
handlers are `async` and score inline: one record takes microseconds, less
than a hop to a thread pool would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lakeforge.serving.online_log import Entry, OnlineLog
from lakeforge.serving.scorer import Scorer
from lakeforge.serving.signature import InvalidRecord

log = logging.getLogger(__name__)


def _problem(status: int, field: str | None, message: str) -> JSONResponse:
    detail: dict[str, Any] = {"msg": message}
    if field is not None:
        detail["field"] = field
    return JSONResponse({"detail": [detail]}, status_code=status)


def _records(body: Any) -> tuple[list[Mapping[str, Any]], bool] | JSONResponse:
    """The records of a request body and whether it was a single one."""
    if isinstance(body, dict):
        return [body], True
    if isinstance(body, list) and body and all(isinstance(r, dict) for r in body):
        return body, False
    return _problem(
        422, None, "the body must be a JSON object (one record) or a non-empty list of objects"
    )


def _no_constant(name: str) -> Any:
    """JSON has no NaN or Infinity; Python's parser accepts them: refused."""
    raise ValueError(f"{name} is not a JSON number (send null for a missing value)")


def create_app(scorer: Scorer, online_log: OnlineLog | None, *, max_batch: int = 1000) -> FastAPI:
    # a record is well under 4 KB: a body past this is refused unread
    max_bytes = max_batch * 4096

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # uvicorn's graceful shutdown (SIGTERM, SIGINT) runs this, then re-raises
        # the signal: code after uvicorn.run() never runs, so the log is closed here
        scorer.stop()
        if online_log is not None:
            online_log.close()
            counts = online_log.counts
            log.info(
                "serve: stopped; inference log: %d row(s) written, %d lost",
                counts.rows_written,
                counts.rows_lost,
            )

    app = FastAPI(title="lakeforge", docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        received = datetime.now(UTC)
        size = request.headers.get("content-length", "")
        if size.isdigit() and int(size) > max_bytes:
            return _problem(413, None, f"{size} bytes; at most {max_bytes} per request")
        try:
            body = json.loads(await request.body(), parse_constant=_no_constant)
        except (ValueError, OverflowError) as exc:  # JSONDecodeError, NaN, huge numbers
            return _problem(422, None, f"the body is not JSON the model can read: {exc}")
        parsed = _records(body)
        if isinstance(parsed, JSONResponse):
            return parsed
        records, single = parsed
        if len(records) > max_batch:
            return _problem(413, None, f"{len(records)} records; at most {max_batch} per request")
        model = scorer.current  # read once: a reload does not change it mid-request
        known = set(model.signature.names())
        for position, record in enumerate(records):
            unknown = sorted(set(record) - known)
            if unknown:
                where = "" if single else f"record {position}: "
                return _problem(
                    422,
                    unknown[0],
                    f"{where}unknown field(s) {unknown}; the model reads {sorted(known)}",
                )
        try:
            # personal inputs arrive in clear: scored and logged as bronze holds them
            records = model.protect(records)
            answers = model.score(records)
        except InvalidRecord as exc:
            return _problem(422, exc.field, exc.problem)
        if online_log is not None:
            online_log.append(
                Entry(
                    model.name,
                    model.version,
                    model.run_id,
                    model.signature,
                    records,
                    answers,
                    received,
                )
            )
        identity = {"model": model.name, "version": model.version}
        if single:
            return JSONResponse({**identity, **answers[0]})
        return JSONResponse({**identity, "predictions": answers})

    @app.get("/health")
    async def health() -> JSONResponse:
        model = scorer.current
        status: dict[str, Any] = {
            "status": "ok",
            "model": model.name,
            "version": model.version,
            "reloads": scorer.reloads,
            "reload_error": scorer.last_error,
        }
        if online_log is not None:
            status["inference_log"] = {"table": online_log.path, **asdict(online_log.counts)}
        return JSONResponse(status)

    @app.get("/metadata")
    async def metadata() -> JSONResponse:
        model = scorer.current
        signature = model.signature
        return JSONResponse(
            {
                "model": model.name,
                "version": model.version,
                "run_id": model.run_id,
                "task": signature.task,
                "classes": signature.classes,
                "inputs": [
                    {
                        "name": i.name,
                        "kind": i.kind,
                        "categories": i.categories,
                        # sent in clear; protected before scoring and logging
                        "protection": signature.protection(i.name),
                        "sent_as": signature.source_type(i.name),
                    }
                    for i in signature.inputs
                ],
                "parity": {"largest_difference": signature.parity, "rows": signature.rows_checked},
            }
        )

    return app
