"""A small builder for the ONNX graph of a fitted pipeline.

Each Spark stage's converter adds nodes that read and write named columns,
as the stage reads and writes DataFrame columns; the builder keeps, per
column, the ONNX tensor that holds it now and its width (a scalar column is
`[N, 1]`, a vector column `[N, width]`). Numbers are float64 all the way
through (as in Spark), so a converted stage can match Spark to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lakeforge.serving.signature import Input

# ai.onnx 21: Equal on strings; ai.onnx.ml 3: tree thresholds as float64 tensors
OPSET = 21
ML_OPSET = 3
ML = "ai.onnx.ml"


class NotExportable(Exception):
    """A stage (or a setting of it) the online model cannot reproduce; the
    message names the stage and why."""


@dataclass(frozen=True)
class Column:
    tensor: str  # the ONNX value holding the column now
    width: int  # 1 for a scalar column
    kind: str  # "number" (float64), "string", "index" (float64 category index)


@dataclass
class Graph:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    columns: dict[str, Column] = field(default_factory=dict)
    # a silver column a stage reads becomes a model input on first use
    # (resolve says what kind it is, None when the rows have no such column)
    resolve: Callable[[str], Input | None] = lambda _name: None
    declared: list[Input] = field(default_factory=list)
    _count: int = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def input(self, spec: Input) -> None:
        """A model input: one column of the silver row, `[N, 1]`."""
        elem = TensorProto.STRING if spec.kind == "string" else TensorProto.DOUBLE
        self.inputs.append(helper.make_tensor_value_info(spec.name, elem, [None, 1]))
        self.columns[spec.name] = Column(spec.name, 1, spec.kind)
        self.declared.append(spec)

    def const(self, value: Any, hint: str = "c") -> str:
        array = np.asarray(value)
        if array.dtype.kind in "US":
            array = array.astype(object)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.name(hint)
        domain = ML if op_type in _ML_OPS else ""
        self.nodes.append(helper.make_node(op_type, inputs, [out], domain=domain, **attrs))
        return out

    def column(self, name: str) -> Column:
        if name not in self.columns:
            spec = self.resolve(name)
            if spec is None:
                raise NotExportable(f"column {name!r} is read before any stage writes it")
            self.input(spec)
        return self.columns[name]

    def set(self, name: str, tensor: str, width: int, kind: str = "number") -> None:
        self.columns[name] = Column(tensor, width, kind)

    def output(self, name: str, tensor: str, elem: int, width: int | None) -> None:
        self.nodes.append(helper.make_node("Identity", [tensor], [name]))
        shape: list[int | None] = [None] if width is None else [None, width]
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))

    def model(self, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "lakeforge", self.inputs, self.outputs, initializer=self.initializers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(ML, ML_OPSET)],
            producer_name="lakeforge",
            doc_string=doc,
        )
        model.ir_version = 10
        onnx.checker.check_model(model, full_check=True)
        return model


_ML_OPS = {"LabelEncoder", "TreeEnsembleRegressor"}


def tree_ensemble(
    graph: Graph,
    x: str,
    hint: str,
    *,
    targets: int,
    nodes: dict[str, list[Any]],
    leaves: dict[str, list[Any]],
    missing_goes_true: list[int],
    base: list[float] | None = None,
) -> str:
    """One TreeEnsembleRegressor summing every tree's leaf weights per target
    (float32 output), thresholds and weights as float64 tensors. `nodes` holds
    the lists treeids, nodeids, featureids, modes, values, true, false;
    `leaves` treeids, nodeids, ids, weights."""
    extra: dict[str, Any] = {}
    if base is not None:
        extra["base_values_as_tensor"] = numpy_helper.from_array(np.asarray(base, np.float64))
    return graph.op(
        "TreeEnsembleRegressor",
        [x],
        hint,
        n_targets=targets,
        aggregate_function="SUM",
        nodes_treeids=nodes["treeids"],
        nodes_nodeids=nodes["nodeids"],
        nodes_featureids=nodes["featureids"],
        nodes_modes=nodes["modes"],
        nodes_values_as_tensor=numpy_helper.from_array(np.asarray(nodes["values"], np.float64)),
        nodes_truenodeids=nodes["true"],
        nodes_falsenodeids=nodes["false"],
        nodes_missing_value_tracks_true=missing_goes_true,
        target_treeids=leaves["treeids"],
        target_nodeids=leaves["nodeids"],
        target_ids=leaves["ids"],
        target_weights_as_tensor=numpy_helper.from_array(np.asarray(leaves["weights"], np.float64)),
        **extra,
    )
