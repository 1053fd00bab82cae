"""The starter dataset config as YAML text, with comments for the person reviewing it.

Written as text (a YAML library drops comments). Every string that is not a
plain identifier is written as a JSON string, which is valid YAML; the caller
loads the result back through the config loader before it is written.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lakeforge.starter.plan import Features, Label
from lakeforge.starter.profile import ColumnProfile, KeyChoice, Profile
from lakeforge.starter.sample import Sample

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# plain words YAML 1.1 (PyYAML) reads as booleans or null
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
# characters a YAML stream may not hold literally (json.dumps leaves them)
_NON_PRINTABLE = re.compile("[\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
_WIDTH = 96


@dataclass(frozen=True)
class Starter:
    """Everything the config says, decided."""

    name: str
    shown: str  # the input as the user gave it
    source_path: str  # what source.path says
    sample: Sample
    found: Profile
    keys: KeyChoice
    features: Features
    label: Label | None
    label_note: str  # why there is no train section, or how the label was found
    xgboost: bool  # the xgboost estimators are installed


def quoted(text: str) -> str:
    """A double-quoted YAML scalar (a JSON string)."""
    dumped = json.dumps(text, ensure_ascii=False)
    return _NON_PRINTABLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", dumped)


def scalar(text: str) -> str:
    """`text` as a YAML scalar: bare when it is a plain identifier, else quoted."""
    plain = _PLAIN.match(text) and text.lower() not in _YAML_WORDS
    return text if plain else quoted(text)


def flow(items: Iterable[str], indent: int = 0) -> str:
    """`[a, b, c]`, continued on lines indented by `indent` + 2 past the width."""
    text = "[" + ", ".join(scalar(i) for i in items) + "]"
    if indent + len(text) <= _WIDTH:
        return text
    lines = textwrap.wrap(text, _WIDTH - indent - 2, break_long_words=False, break_on_hyphens=False)
    return f"\n{' ' * (indent + 2)}".join(lines)


def block(name: str, lines: Sequence[str], indent: int) -> list[str]:
    """`name: >-` and `lines` folded into one string (joined by spaces), or
    `name: "..."` when a line holds what a block scalar cannot."""
    pad = " " * indent
    text = " ".join(lines)
    if any(_NON_PRINTABLE.search(line) or line != line.strip() for line in lines) or any(
        ch in text for ch in "\n\r\t"
    ):
        return [f"{pad}{scalar(name)}: {quoted(text)}"]
    return [f"{pad}{scalar(name)}: >-", *(f"{pad}  {line}" for line in lines)]


def comment(text: str, indent: int = 0) -> list[str]:
    """`# text` wrapped to the width, one line of the file per element."""
    pad = " " * indent
    flat = " ".join(text.split())
    lines = textwrap.wrap(flat, _WIDTH - indent - 2, break_on_hyphens=False) or [""]
    return [f"{pad}# {lines[0]}", *(f"{pad}#   {line}" for line in lines[1:])]


def render(s: Starter) -> str:
    """The dataset config's text."""
    lines = [*_preamble(s), *_source(s), *_keys(s.keys), *_clean(s), *_train(s)]
    return "\n".join(lines) + "\n"


def _preamble(s: Starter) -> list[str]:
    n = len(s.sample.rows)
    read = (
        f"all {n:,} rows of the file"
        if s.sample.whole_file
        else f"its first {n:,} rows only (a big file is not read to its end)"
    )
    sorted_file = (
        []
        if s.sample.whole_file
        else comment(
            "REVIEW: the first rows of a file sorted by time or by key may not be typical "
            "(a column constant in them, a class missing): --sample-rows N reads more."
        )
    )
    return [
        *comment(f"Starter config written by `lakeforge init` from {s.shown}."),
        *comment(f"Profiled on {read}: every type, null marker and count below comes from them."),
        *sorted_file,
        *comment("Lines marked REVIEW are guesses a person should check before trusting them."),
        f"name: {s.name}",
        f"description: {quoted(f'Starter config for {s.shown} (lakeforge init).')}",
        "",
    ]


def _source(s: Starter) -> list[str]:
    sample = s.sample
    lines = ["source:", f"  format: {sample.format}", f"  path: {quoted(s.source_path)}"]
    if sample.csv is not None:
        dialect = sample.csv
        lines += ["  csv:", f"    header: {'true' if dialect.header else 'false'}"]
        if not dialect.header:
            lines += comment("no header line: columns are named by position, col_1..", 4)
        lines.append(f"    delimiter: {quoted(dialect.delimiter)}")
        if dialect.quote != '"':
            lines += [f"    quote: {quoted(dialect.quote)}", f"    escape: {quoted(dialect.quote)}"]
        if sample.encoding != "UTF-8":
            lines.append(f"    encoding: {sample.encoding}")
        markers = sorted({"", *(m for c in s.found.columns for m in c.null_markers)})
        lines += comment("text read as null: the markers found in the sample", 4)
        lines.append(f"    null_values: [{', '.join(quoted(m) for m in markers)}]")
    for note in sample.review:
        lines += comment(f"REVIEW: {note}", 2)
    if any(c.header and c.header != c.name for c in s.found.columns):
        lines += comment("`header` is the column's name in the file where it is no identifier", 2)
    lines.append("  columns:")
    lines += [_column(c) for c in s.found.columns]
    if s.found.skipped:
        lines += comment("left out of the columns (no schema column can hold them):", 2)
        lines += [_indented(f"{h}: {why}", 2) for h, why in s.found.skipped]
        if sample.format == "parquet":
            lines += comment(
                "REVIEW: ingest refuses a Parquet file with undeclared columns unless "
                "schema_drift is evolve (which keeps them in bronze)",
                2,
            )
    return [*lines, ""]


def _column(c: ColumnProfile) -> str:
    fields = [f"name: {scalar(c.name)}", f"type: {scalar(c.type)}"]
    if c.format:
        fields.append(f"format: {quoted(c.format)}")
    if c.header and c.header != c.name:
        fields.append(f"header: {quoted(c.header)}")
    line = "    - {" + ", ".join(fields) + "}"
    return f"{line}  # REVIEW: {c.review}" if c.review else line


def _indented(text: str, indent: int) -> str:
    return " " * indent + "#   " + " ".join(text.split())


def _keys(keys: KeyChoice) -> list[str]:
    if not keys.columns:
        return [*comment(f"No keys: {keys.why}."), ""]
    return [
        *comment(
            f"REVIEW: the key: {keys.why}. Clean keeps one row per key (the latest) and "
            "merges on it: a key that is not really one merges distinct rows."
        ),
        f"keys: {flow(keys.columns)}",
        "",
    ]


def _clean(s: Starter) -> list[str]:
    parsed = [c for c in s.found.columns if c.parse is not None]
    derive = dict(s.features.derive)
    label = s.label
    lines: list[str] = []
    if parsed or derive or (label and label.derive):
        lines.append("clean:")
    if parsed:
        lines.append("  parse:")
        lines += comment("bronze keeps these as text; clean reads the numbers", 4)
        for c in parsed:
            assert c.parse is not None
            spec = c.parse
            lines.append(
                f"    {scalar(c.name)}: {{type: {spec.type}, decimal: {quoted(spec.decimal)}, "
                f"group: {quoted(spec.group)}}}"
            )
    if derive or (label and label.derive):
        lines.append("  derive:")
    if label and label.derive:
        rows = len(s.sample.rows)
        lines += comment(f"the label as classes 0..k-1, {label.mapping}", 4)
        lines += comment(
            f"REVIEW: classes as seen in {'the file' if s.sample.whole_file else f'{rows:,} rows'}"
            "; any other value becomes NULL and the label_known rule quarantines its row",
            4,
        )
        lines += block(label.target, label.derive_lines, 4)
    for flag, sql in derive.items():
        lines += comment("a true/false column as 0/1 for the numeric features", 4)
        lines.append(f"    {scalar(flag)}: {quoted(sql)}")
    if lines:
        lines.append("")
    if label is not None:
        lines += [
            "rules:",
            *comment(
                "a row without a label teaches nothing: it goes to the quarantine (not lost)", 2
            ),
            f"  - {{name: label_known, type: not_null, column: {scalar(label.target)}, "
            "severity: drop}",
            "",
        ]
    return lines


def _train(s: Starter) -> list[str]:
    label, features = s.label, s.features
    if label is None or features.empty:
        why = s.label_note if label is None else "no column is usable as a feature"
        return comment(
            f"REVIEW: no train section: {why}. Add one (see conf/datasets/penguins.yaml) or "
            "run lakeforge init again with --label COLUMN."
        )
    lines = ["train:"]
    if s.label_note:
        lines += comment(f"REVIEW: {s.label_note}", 2)
    lines += comment(f"REVIEW: task guessed from {label.column}: {label.why}", 2)
    for note in label.review:
        lines += comment(f"REVIEW: {note}", 2)
    lines += [f"  task: {label.task}", f"  label: {scalar(label.target)}", "  features:"]
    lines += comment("REVIEW: drop any feature known only after the label (a leak)", 4)
    lines += _feature_blocks(features)
    lines += [
        "  split: {method: hash, validation: 0.1, test: 0.2, folds: 3, seed: 42}",
        "  models:",
        *_models(label, s.xgboost, len(features.numeric) + len(features.categorical)),
    ]
    return lines


def _feature_blocks(f: Features) -> list[str]:
    lines: list[str] = []
    if f.numeric:
        lines += [
            "    numeric:",
            f"      columns: {flow(f.numeric, 6)}",
            "      impute: median",
            "      scale: standard",
        ]
    if f.categorical:
        lines += [
            "    categorical:",
            f"      columns: {flow(f.categorical, 6)}",
            "      handle_invalid: keep",
        ]
    if f.dates:
        lines += ["    dates:"]
        lines += comment(
            "calendar parts as categories; not the year, which later batches hold but "
            "training never saw",
            6,
        )
        lines += [f"      - {{column: {scalar(c)}, parts: {flow(p)}}}" for c, p in f.dates]
    if f.left_out:
        lines += comment("left out of the features:", 4)
        lines += [_indented(f"{name}: {why}", 4) for name, why in f.left_out]
    return lines


# Past this many feature columns the default search is made lighter: Spark's
# multinomial logistic regression costs about a second per optimiser step at
# ~800 dense features on 2 cores (measured on MNIST), and boosting rounds grow
# with the classes.
WIDE = 100


def _models(label: Label, xgboost: bool, n_features: int) -> Sequence[str]:
    linear = "linear_regression" if label.task == "regression" else "logistic_regression"
    wide = n_features > WIDE
    lines: list[str] = []
    if wide:
        lines += comment(
            f"{n_features} feature columns: Spark's {linear} costs 1-2 s per optimiser "
            "step at this width, so the default search is 50 boosting rounds (the linear "
            "model only without xgboost, at most 30 steps); widen it once it runs",
            4,
        )
        if not xgboost:
            lines += [f"    - estimator: {linear}", "      params: {regParam: 0.1, maxIter: 30}"]
    else:
        lines += [f"    - estimator: {linear}", "      grid: {regParam: [0.01, 0.1]}"]
    if xgboost:
        rounds = 50 if wide else 100
        lines += [
            "    - estimator: xgboost",
            f"      params: {{n_estimators: {rounds}, max_depth: 4, learning_rate: 0.1}}",
        ]
    else:
        lines += comment("xgboost is not installed (pip install 'lakeforge[xgboost]')", 4)
    return lines
