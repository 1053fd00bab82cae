"""The fitted PipelineModel as an ONNX model, and its parity with Spark.

`convert` walks the pipeline's stages and adds each one's ONNX nodes
(serving/stages.py, serving/models.py); a stage it cannot reproduce raises
NotExportable naming it. `check_parity` scores rows Spark already scored
with the ONNX model inside Spark tasks (`mapInPandas`: no row comes to the
driver), and returns the largest difference with the row that shows it.
Train calls both and marks the registered version servable only when every
test row agrees within TOLERANCE.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from onnx import TensorProto
from pyspark.ml import PipelineModel, Transformer
from pyspark.ml.feature import StringIndexerModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config.cleaning import CleanSteps
from lakeforge.config.privacy import Privacy, Protection
from lakeforge.privacy import records
from lakeforge.serving import ensembles, stages
from lakeforge.serving.graph import Graph, NotExportable
from lakeforge.serving.signature import Input, Signature, feeds

# the largest difference allowed: a probability (classification), or
# |onnx - spark| / max(|spark|, 1) (regression)
TOLERANCE = 1e-5
PREDICTION = "prediction"
# the names an expression may read (a function name too: erring towards refusal)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PROBABILITY = "probability"


@dataclass(frozen=True)
class Parity:
    largest: float  # the largest difference over the rows checked
    mismatches: int  # rows whose predicted label differs
    rows: int  # rows checked (counted by the tasks that scored them)
    worst: str  # the row showing the largest difference, as JSON

    @property
    def holds(self) -> bool:
        return self.largest <= TOLERANCE and self.mismatches == 0


def convert(
    model: PipelineModel, schema: T.StructType, columns: list[str], task: str, classes: int
) -> tuple[bytes, Signature]:
    """The ONNX bytes of `model` reading silver `columns` (typed by `schema`),
    and its signature. Raises NotExportable naming the stage or column."""
    flat = _flatten(model)
    graph = Graph(resolve=lambda name: _input(schema, name, flat))
    for name in columns:  # the declared inputs first, in order; others as stages read them
        graph.column(name)
    for stage in flat:
        convert_stage = stages.converter(stage) or ensembles.converter(stage)
        if convert_stage is None:
            raise NotExportable(f"stage {type(stage).__name__} {stage.uid!r}: no ONNX converter")
        try:
            convert_stage(graph, stage)
        except NotExportable as exc:
            text = str(exc)
            raise NotExportable(
                text if text.startswith("stage ") else f"stage {type(stage).__name__}: {text}"
            ) from None
    graph.output(PREDICTION, graph.column(PREDICTION).tensor, TensorProto.DOUBLE, 1)
    if task != "regression":
        if PROBABILITY not in graph.columns:
            raise NotExportable(
                f"model {type(flat[-1]).__name__}: no class probabilities to serve (margins only)"
            )
        graph.output(PROBABILITY, graph.column(PROBABILITY).tensor, TensorProto.DOUBLE, classes)
    doc = f"lakeforge {task} model: {' -> '.join(type(s).__name__ for s in flat)}"
    onnx_model = graph.model(doc)
    return onnx_model.SerializeToString(), Signature(task, classes, tuple(graph.declared))


def _flatten(model: Transformer) -> list[Transformer]:
    if isinstance(model, PipelineModel):
        return [s for stage in model.stages for s in _flatten(stage)]
    return [model]


def _input(schema: T.StructType, name: str, flat: list[Transformer]) -> Input | None:
    if name not in schema.fieldNames():
        return None
    kind_of = schema[name].dataType
    if isinstance(kind_of, T.StringType):
        return Input(name, "string", _refused_categories(name, flat))
    if isinstance(kind_of, T.IntegralType):
        return Input(name, "int")
    if isinstance(kind_of, T.FractionalType):
        return Input(name, "number")
    if isinstance(kind_of, T.DateType):
        return Input(name, "date")
    raise NotExportable(f"input {name!r}: {kind_of.simpleString()} columns are not exported")


def _refused_categories(name: str, flat: list[Transformer]) -> tuple[str, ...] | None:
    """The labels of the StringIndexer reading `name` when it refuses unseen
    values (handle_invalid error or skip): the server answers 422 for those,
    where Spark would fail the batch or drop the row."""
    for stage in flat:
        if isinstance(stage, StringIndexerModel) and stage.getHandleInvalid() != "keep":
            cols = stage.getInputCols() if stage.isSet("inputCols") else [stage.getInputCol()]
            if name in cols:
                return tuple(stage.labelsArray[cols.index(name)])
    return None


def check_parity(scored: DataFrame, onnx_bytes: bytes, signature: Signature) -> Parity:
    """Score every row of `scored` (rows the Spark model transformed) with the
    ONNX model in Spark tasks; the largest difference, the rows whose label
    differs, the rows checked, and the worst row."""
    wanted = [F.col(c) for c in signature.names()]
    wanted.append(F.col(PREDICTION).alias("__spark_prediction"))
    if signature.task != "regression":
        wanted.append(vector_to_array(F.col(PROBABILITY)).alias("__spark_probability"))
    schema = "largest double, mismatches long, rows long, worst string, mismatch string"
    checks = scored.select(*wanted).mapInPandas(
        _parity_task(onnx_bytes, signature.to_json()), schema
    )
    results = checks.collect()  # one row per partition
    largest = max((r["largest"] for r in results), default=0.0)
    worst = next((r["worst"] for r in results if r["largest"] == largest), "")
    mismatched = [r["mismatch"] for r in results if r["mismatch"]]
    if mismatched and largest <= TOLERANCE:
        worst = mismatched[0]  # the probabilities agree: show a row whose label does not
    return Parity(
        largest=largest,
        mismatches=sum(int(r["mismatches"]) for r in results),
        rows=sum(int(r["rows"]) for r in results),
        worst=worst,
    )


def _parity_task(onnx_bytes: bytes, signature_json: str) -> Any:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import onnxruntime as ort

        signature = Signature.from_json(signature_json)
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        largest, mismatches, rows, worst, mismatch = 0.0, 0, 0, "", ""
        for batch in batches:
            if batch.empty:
                continue
            columns = {c: batch[c].tolist() for c in signature.names()}
            tensors = session.run(None, feeds(signature, columns, len(batch)))
            answers = dict(zip(names, tensors, strict=True))
            diff, wrong = _differences(signature, batch, answers)
            rows += len(batch)
            mismatches += int(wrong.sum())
            at = int(np.argmax(diff))
            if diff[at] > largest or not worst:
                largest = max(largest, float(diff[at]))
                worst = _describe(signature, batch, answers, at, float(diff[at]))
            if wrong.any() and not mismatch:
                first = int(np.argmax(wrong))
                mismatch = _describe(signature, batch, answers, first, float(diff[first]))
        yield pd.DataFrame(
            [
                {
                    "largest": largest,
                    "mismatches": mismatches,
                    "rows": rows,
                    "worst": worst,
                    "mismatch": mismatch,
                }
            ]
        )

    return run


def _differences(
    signature: Signature, batch: pd.DataFrame, answers: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the largest difference, and whether the predicted label differs."""
    spark_prediction = batch["__spark_prediction"].to_numpy(dtype=np.float64)
    onnx_prediction = answers[PREDICTION].reshape(-1)
    if signature.task == "regression":
        scale = np.maximum(np.abs(spark_prediction), 1.0)
        diff = np.abs(onnx_prediction - spark_prediction) / scale
        wrong = np.zeros(len(batch), dtype=bool)
    else:
        spark_probability = np.array(batch["__spark_probability"].tolist(), dtype=np.float64)
        diff = np.abs(answers[PROBABILITY] - spark_probability).max(axis=1)
        wrong = onnx_prediction != spark_prediction
    # NaN on both sides agrees; NaN on one side is the largest difference there is
    both_nan = np.isnan(onnx_prediction) & np.isnan(spark_prediction)
    diff = np.where(np.isnan(diff), np.where(both_nan, 0.0, math.inf), diff)
    return diff, wrong & ~both_nan


def _describe(
    signature: Signature, batch: pd.DataFrame, answers: dict[str, np.ndarray], at: int, diff: float
) -> str:
    row = {c: batch[c].iloc[at] for c in signature.names()}
    shown = {
        "difference": diff,
        "inputs": row,
        "spark": {
            PREDICTION: batch["__spark_prediction"].iloc[at],
            **(
                {PROBABILITY: list(batch["__spark_probability"].iloc[at])}
                if signature.task != "regression"
                else {}
            ),
        },
        "onnx": {name: np.asarray(value[at]).tolist() for name, value in answers.items()},
    }
    return json.dumps(shown, default=_plain)


def _plain(value: Any) -> Any:
    """numpy scalars as numbers, dates as ISO text: the row as a person reads it."""
    if isinstance(value, np.generic):
        return value.item()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@dataclass(frozen=True)
class Export:
    """The online form of a trained model, or why there is none."""

    onnx: bytes | None
    signature: Signature | None
    reason: str | None  # None: servable
    parity: Parity | None = None

    @property
    def servable(self) -> bool:
        return self.reason is None


def export(
    model: PipelineModel, scored: DataFrame, columns: list[str], task: str, classes: int
) -> Export:
    """Convert `model` and check it on `scored` (its own transform of the test
    rows). Never raises for a model it cannot serve: the reason says why."""
    try:
        onnx_bytes, signature = convert(model, scored.schema, columns, task, classes)
    except NotExportable as exc:
        return Export(None, None, f"not exportable: {exc}")
    parity = check_parity(scored, onnx_bytes, signature)
    signature = replace(signature, parity=parity.largest, rows_checked=parity.rows)
    if not parity.holds:
        what = (
            f"{parity.mismatches} row(s) predicted another label"
            if parity.mismatches
            else f"largest difference {parity.largest:.3g} > {TOLERANCE:g}"
        )
        return Export(
            onnx_bytes,
            signature,
            f"parity with Spark failed on the test split: {what}; worst row: {parity.worst}",
            parity,
        )
    return Export(onnx_bytes, signature, None, parity)


def with_privacy(
    online: Export,
    privacy: Privacy | None,
    types: dict[str, str],
    bronze: str | None,
    clean: CleanSteps,
) -> Export:
    """`online` with what the server needs to give a request's personal
    inputs the form silver holds (privacy/records.py): their protections as
    `bronze` records them (the fingerprint ingest logged with its latest
    batch; None: no batch logged one, and the dataset's `privacy` block is
    taken), source `types`, clean's text steps, the key's variable and check
    value. A protection Python cannot reproduce exactly, or a pseudonymised
    input with no recorded key check, leaves the model batch-only, and the
    reason says which input."""
    if online.signature is None:
        return online
    key_env = privacy.key_env if privacy is not None else None
    key_check = None
    if bronze is not None:
        logged = json.loads(bronze)
        key_check = logged.get("key_check")
        columns = logged.get("columns") or {}
        privacy = Privacy.model_construct(
            key_env=key_env,
            columns={c: Protection(**entry["protection"]) for c, entry in columns.items()},
        )
        # the type a value had when it was protected decides its text
        types = {**types, **{c: e["type"] for c, e in columns.items() if e.get("type")}}
    recorded = records.describe(privacy, types, online.signature.names(), key_check, clean)
    reasons: list[str] = []
    for name, spec in recorded["columns"].items():
        protection = Protection(**spec["protection"])
        problem = records.unsupported(
            name, protection, spec["type"], parsed=bool(spec.get("parsed"))
        )
        if problem is not None:
            reasons.append(problem)
        elif protection.action == "pseudonymise" and key_check is None:
            reasons.append(
                f"privacy: {name} is pseudonymised and the ingest log records no check value "
                "of the key (bronze was ingested before lakeforge recorded it): a server's "
                "key could not be checked against bronze's"
            )
    protected = set(privacy.columns) if privacy is not None else set()
    for name in online.signature.names():
        # a silver column clean derived from a protected one: the client would
        # compute it from the clear value, which the server cannot see
        read = set(_IDENTIFIER.findall(clean.derive.get(name, ""))) & protected
        if read:
            reasons.append(
                f"privacy: input {name} is derived by clean from protected "
                f"{', '.join(sorted(read))}: a request's value could not be protected"
            )
    signature = replace(online.signature, privacy=recorded)
    reason = online.reason or ("; ".join(reasons) if reasons else None)
    return replace(online, signature=signature, reason=reason)
