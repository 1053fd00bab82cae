"""The severity gate: turn rule counts and GX results into warnings or a stop.

Pure: takes what the rules found, logs `warn` rules, raises DataQualityFailure
for `fail` rules (`fired` returns them instead, for a caller that must undo a
write before it stops). GX reports failure as `success == False` without raising,
so this is where a failed validation becomes a failed job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from lakeforge.config.cleaning import Rule
from lakeforge.errors import DataQualityFailure
from lakeforge.quality.expectations import TableValidation

log = logging.getLogger(__name__)


def enforce(
    rules: Sequence[Rule], counts: Mapping[str, int], validation: TableValidation, where: str
) -> None:
    """Log every `warn` rule that fired; raise DataQualityFailure naming every
    `fail` rule that fired (row rules with their row count, table rules with
    what GX observed)."""
    stops = fired(rules, counts, validation, where)
    if stops:
        raise DataQualityFailure(
            f"{where}: rule(s) of severity fail fired: {'; '.join(stops)}; silver not changed"
        )


def fired(
    rules: Sequence[Rule], counts: Mapping[str, int], validation: TableValidation, where: str
) -> list[str]:
    """Log every `warn` rule that fired; return each `fail` rule that fired,
    as `name (what was found)`, for the caller to stop on (after undoing
    what it must)."""
    by_name = {r.name: r for r in rules}
    stops: list[str] = []
    for rule in rules:
        hits = counts.get(rule.name, 0)
        if rule.is_row_level and hits:
            if rule.severity == "warn":
                log.warning("%s: rule %s (warn): %d row(s)", where, rule.name, hits)
            elif rule.severity == "fail":
                stops.append(f"{rule.name} ({hits} rows)")
    for name, passed in validation.results.items():
        if passed:
            continue
        observed = _short(validation.observed.get(name))
        if by_name[name].severity == "warn":
            log.warning("%s: rule %s (warn) failed: observed %s", where, name, observed)
        else:
            stops.append(f"{name} (observed {observed})")
    return stops


def _short(value: object) -> str:
    if isinstance(value, dict):
        keys = ("observed_value", "unexpected_count", "unexpected_percent")
        return ", ".join(f"{k}={value[k]}" for k in keys if k in value) or str(value)[:120]
    return str(value)[:120]
