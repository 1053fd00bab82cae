"""The ONNX model as MLflow's `python_function` flavour of the registered
version, so `mlflow models serve -m models:/NAME@champion --env-manager local`
serves it without Spark (the version's `spark` flavour, which predict
loads, is untouched).

MLflow imports this module by name (`loader_module` in the MLmodel file) and
calls `_load_pyfunc` with the version's `online/` folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import pandas as pd

from lakeforge.privacy.records import InvalidValue, RecordProtector
from lakeforge.serving.layout import MODEL_FILE, SIGNATURE_FILE
from lakeforge.serving.signature import InvalidRecord, Signature, feeds

LOADER_MODULE = "lakeforge.serving.pyfunc"


class OnnxModel:
    """MLflow's pyfunc interface over the ONNX session: a frame in (the
    silver columns the model reads; others are ignored), a frame out with
    `prediction` and, for a classifier, `probability`."""

    def __init__(self, folder: Path) -> None:
        self.signature = Signature.from_json((folder / SIGNATURE_FILE).read_text())
        self.session = ort.InferenceSession(
            (folder / MODEL_FILE).read_bytes(), providers=["CPUExecutionProvider"]
        )
        self.outputs = [o.name for o in self.session.get_outputs()]
        # inputs holding personal data arrive in clear, as at `lakeforge serve`
        self.protector = RecordProtector.from_recorded(self.signature.privacy)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        # missing values (None, NaN, pandas' NA and NaT) are read as nulls by feeds
        columns = {c: frame[c].tolist() for c in self.signature.names() if c in frame.columns}
        if self.protector is not None:
            try:
                columns = self.protector.protect_columns(columns)
            except InvalidValue as exc:
                raise InvalidRecord(exc.column, exc.problem) from None
        tensors = self.session.run(None, feeds(self.signature, columns, len(frame)))
        answers = dict(zip(self.outputs, tensors, strict=True))
        out = pd.DataFrame({"prediction": answers["prediction"].reshape(-1)})
        if "probability" in answers:
            out["probability"] = [row.tolist() for row in answers["probability"]]
        return out


_MLFLOW_TYPES = {"number": "double", "int": "long", "string": "string", "date": "datetime"}
# a protected input is sent as its source column holds it, in clear
_SOURCE_TYPES = {
    "string": "string",
    "boolean": "boolean",
    "date": "datetime",
    **dict.fromkeys(("byte", "short", "int", "long"), "long"),
}


def pyfunc_signature(signature: Signature) -> Any:
    """MLflow's signature of the ONNX flavour: one optional column per input."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    protected = (signature.privacy or {}).get("columns") or {}

    def sent_as(name: str, kind: str) -> str:
        if name not in protected:
            return _MLFLOW_TYPES[kind]
        return _SOURCE_TYPES.get(str(protected[name]["type"]), "double")  # decimals as numbers

    columns: list[ColSpec | TensorSpec] = [
        ColSpec(sent_as(i.name, i.kind), i.name, required=False) for i in signature.inputs
    ]
    return ModelSignature(inputs=Schema(columns))


def _load_pyfunc(path: str) -> OnnxModel:
    return OnnxModel(Path(path))
