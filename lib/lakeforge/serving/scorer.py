"""The registered model a server answers with, and the switch to a new one
when the alias moves.

A `Loaded` model is immutable: its ONNX session, signature and identity. The
`Scorer` holds one and replaces the reference when a poll finds the alias on
another servable version; a request reads the reference once, so a request
in flight finishes on the model it started with, and none fails or waits
for a load. Imports no Spark: the server process never starts a JVM.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnxruntime as ort
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lakeforge.errors import InputNotFound
from lakeforge.privacy.records import InvalidValue, RecordProtector
from lakeforge.serving.layout import (
    ARTIFACT_DIR,
    MODEL_FILE,
    ONLINE_REASON,
    SERVABLE,
    SIGNATURE_FILE,
)
from lakeforge.serving.signature import InvalidRecord, Signature, feeds

log = logging.getLogger(__name__)


class NotServable(InputNotFound):
    """The version the alias names has no ONNX form that matched Spark."""


@dataclass(frozen=True)
class Loaded:
    name: str
    version: str
    run_id: str
    signature: Signature
    session: Any  # onnxruntime.InferenceSession (thread-safe for run())
    outputs: tuple[str, ...]
    # the inputs ingest protected, protected the same way (None: none are)
    protector: RecordProtector | None = None

    def protect(self, records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The records as bronze would hold them: an input holding personal
        data arrives in clear and is scored, and logged, in its protected
        form. Raises InvalidRecord naming a field its source type cannot hold."""
        if self.protector is None:
            return list(records)
        try:
            return list(self.protector.protect(list(records)))
        except InvalidValue as exc:
            raise InvalidRecord(exc.column, exc.problem) from None

    def score(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One answer per record: the prediction and, for a classifier, the
        class probabilities. Raises InvalidRecord naming the field."""
        columns = {name: [r.get(name) for r in records] for name in self.signature.names()}
        tensors = self.session.run(None, feeds(self.signature, columns, len(records)))
        answers = dict(zip(self.outputs, tensors, strict=True))
        predictions = answers["prediction"].reshape(-1)
        probability = answers.get("probability")
        out: list[dict[str, Any]] = []
        for i, value in enumerate(predictions):
            answer: dict[str, Any] = {"prediction": _number(value)}
            if probability is not None:
                answer["probability"] = [_number(p) for p in probability[i]]
            out.append(answer)
        return out


def _number(value: Any) -> float | None:
    number = float(value)
    return None if np.isnan(number) else number  # JSON has no NaN


def unprotected_inputs(signature: Signature, protected: frozenset[str]) -> list[str]:
    """The inputs among `protected` that `signature` does not say how to
    protect: all of them it reads when it predates recorded protections."""
    if signature.privacy is not None:
        return []
    return sorted(protected & set(signature.names()))


def load(
    tracking_uri: str,
    name: str,
    alias: str,
    unless: str | None = None,
    *,
    protected: frozenset[str] = frozenset(),
) -> Loaded | None:
    """The servable version `alias` points at, loaded from its training run;
    None when that is version `unless` (the one already in service).

    Raises InputNotFound (no such model or alias) or NotServable (the version
    has no checked ONNX form, the reason train recorded in the message; or
    it reads one of the `protected` columns (the dataset's privacy block) and
    was trained before lakeforge recorded how to protect a request).
    """
    client = MlflowClient(tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise InputNotFound(
            f"model {name!r} has no {alias!r} alias in {tracking_uri}: run train first"
        ) from None
    if unless is not None and str(version.version) == unless:
        return None
    tags = version.tags or {}
    if tags.get(SERVABLE) != "true":
        reason = tags.get(ONLINE_REASON, "trained before lakeforge exported models to ONNX")
        raise NotServable(f"{name} v{version.version} ({alias}) is not servable: {reason}")
    mlflow.set_tracking_uri(tracking_uri)
    options = ort.SessionOptions()
    # one record takes microseconds: threads cost more than they give, and
    # the server's workers already use the cores
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        with tempfile.TemporaryDirectory(prefix="lakeforge-serve-") as scratch:
            folder = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=str(version.run_id), artifact_path=ARTIFACT_DIR, dst_path=scratch
                )
            )
            model_bytes = (folder / MODEL_FILE).read_bytes()
            signature = Signature.from_json((folder / SIGNATURE_FILE).read_text())
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # missing or damaged files: said as such, not a crash
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise NotServable(
            f"{name} v{version.version} ({alias}): its online files in run {version.run_id} "
            f"cannot be loaded: {first}"
        ) from None
    outputs = tuple(o.name for o in session.get_outputs())
    exposed = unprotected_inputs(signature, protected)
    if exposed:
        raise NotServable(
            f"{name} v{version.version} ({alias}) was trained before lakeforge recorded how "
            f"its inputs are protected: a server would score and log {', '.join(exposed)} "
            "as sent; retrain to serve it"
        )
    # the key is checked against the one training's data was protected with:
    # ConfigError (unset, or another key) stops a start, and keeps the
    # current version in service on a reload
    protector = RecordProtector.from_recorded(signature.privacy)
    log.info(
        "serve: loaded %s v%s (%s), run %s, %d inputs, parity %.1e on %d test rows",
        name,
        version.version,
        alias,
        version.run_id,
        len(signature.inputs),
        signature.parity,
        signature.rows_checked,
    )
    return Loaded(
        name, str(version.version), str(version.run_id), signature, session, outputs, protector
    )


@dataclass
class Scorer:
    """The model in service, and a thread that follows the alias."""

    # the alias's version, or None while it is the version given
    loader: Callable[[str | None], Loaded | None]
    current: Loaded
    poll_seconds: float = 10.0
    reloads: int = 0
    last_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def start(cls, loader: Callable[[str | None], Loaded | None], poll_seconds: float) -> Scorer:
        first = loader(None)
        assert first is not None
        scorer = cls(loader, first, poll_seconds)
        if poll_seconds > 0:
            scorer._thread = threading.Thread(target=scorer._follow, name="alias", daemon=True)
            scorer._thread.start()
        return scorer

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()

    def check(self) -> bool:
        """Load the alias's version if it moved; True when the model changed.
        A version that cannot be served leaves the current one in service."""
        try:
            fresh = self.loader(self.current.version)
        except Exception as exc:  # a failed poll must not stop serving
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if message != self.last_error:
                log.error(
                    "serve: keeping %s v%s: %s", self.current.name, self.current.version, message
                )
            self.last_error = message
            return False
        self.last_error = None
        if fresh is None:
            return False
        previous = self.current
        self.current = fresh  # one reference swap: requests in flight keep theirs
        self.reloads += 1
        log.info("serve: %s v%s -> v%s", fresh.name, previous.version, fresh.version)
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds + 5)
