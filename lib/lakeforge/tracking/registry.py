"""The model registry: register a trained model and move the `champion` alias
only when the new model beats the current champion on the same test rows,
and no fairness limit (`train.fairness`) holds it back.

Aliases, not stages (deprecated in MLflow): `champion` is what predict
loads; a registered model that did not win gets `challenger`. The alias moves
last, after the model and all its metrics are logged, so a crash earlier
leaves the champion where it was.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lakeforge.evaluation.metrics import better
from lakeforge.serving.layout import ONLINE_REASON, SERVABLE

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


class CannotScore(Exception):
    """The champion cannot score today's test rows (a column it reads was
    renamed or dropped): the one failure the gate accepts, by keeping the
    alias where it is. Any other failure (MLflow, Spark, a bug) fails the job."""


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    version: str
    metric: str
    value: float
    champion_version: str | None
    champion_value: float | None
    reason: str
    # why the model may not be champion whatever its metric (fairness limits)
    held_back: tuple[str, ...] = ()


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version holding the champion alias, None when there is none yet."""
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def gate(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    metric: str,
    value: float,
    smaller_is_better: bool,
    margin: float,
    score_champion: Callable[[str], float],
    held_back: Sequence[str] = (),
    audit_champion: Callable[[str], Sequence[str]] | None = None,
) -> GateDecision:
    """Give `version` the champion alias if there is no champion, or if it beats
    the champion's `metric` (recomputed by `score_champion` on the same test
    rows) by more than `margin`; else the challenger alias. A model with
    reasons in `held_back` (a fairness gap past its limit) is a challenger
    whatever its metric, and the champion is not scored. A champion that
    cannot score the rows (`score_champion` raises CannotScore) keeps its
    alias; any other exception propagates, and no alias moves.

    A challenger that meets the fairness limits but not the champion's
    metric still replaces a champion that breaches them (`audit_champion`:
    the champion's breaches on the same test rows under today's limits): a
    limit tightened after a champion was chosen is not defended by that
    champion's accuracy."""
    current = champion_version(client, name)
    if held_back:
        reason = "held back by fairness: " + "; ".join(held_back)
        decision = GateDecision(
            False, version, metric, value, current, None, reason, tuple(held_back)
        )
    elif current is None:
        decision = GateDecision(True, version, metric, value, None, None, "no champion yet")
    else:
        try:
            theirs = score_champion(current)
        except CannotScore as exc:
            # An old champion that cannot score today's rows (columns renamed,
            # say) is not beaten by default: moving the serving alias is left
            # to a person, who can set it by hand in the MLflow UI or client.
            log.error(
                "registry: champion v%s cannot score the test rows, alias not moved: %s",
                current,
                str(exc).splitlines()[0],
            )
            theirs = math.nan
        target = theirs - margin if smaller_is_better else theirs + margin
        wins = not math.isnan(theirs) and better(value, target, smaller_is_better)
        reason = (
            f"{metric} {value:.4f} vs champion v{current} {theirs:.4f} "
            f"(margin {margin}): {'beats' if wins else 'does not beat'} it"
        )
        if not wins and not math.isnan(theirs) and audit_champion is not None:
            try:
                breaches = list(audit_champion(current))
            except CannotScore as exc:  # it cannot be measured on today's groups
                breaches = []
                reason += (
                    f"; champion v{current} could not be audited against today's fairness "
                    f"limits ({str(exc).splitlines()[0][:300]}): kept"
                )
            if breaches and math.isnan(value):
                reason += (
                    f"; champion v{current} breaches the fairness limits, but v{version}'s "
                    f"{metric} is undefined: kept"
                )
            elif breaches:
                wins = True
                reason += (
                    f"; but champion v{current} breaches today's fairness limits on the same "
                    f"test rows ({'; '.join(breaches)}) and v{version} meets them: replaced"
                )
        decision = GateDecision(wins, version, metric, value, current, theirs, reason)
    client.set_registered_model_alias(name, CHAMPION if decision.promoted else CHALLENGER, version)
    # an MLflow tag holds at most 8,000 characters; many breaches may be long
    client.set_model_version_tag(name, version, "lakeforge.gate", decision.reason[:7000])
    log.log(
        logging.WARNING if held_back else logging.INFO,
        "registry: %s v%s %s (%s)",
        name,
        version,
        "is the champion" if decision.promoted else "stays challenger",
        decision.reason,
    )
    return decision


def mark_servable(
    client: MlflowClient, name: str, version: str, servable: bool, reason: str | None
) -> None:
    """Say on the registered version whether `lakeforge serve` can run it
    (its ONNX form exists and matched Spark on every test row) and, if not,
    why; predict scores it either way."""
    client.set_model_version_tag(name, version, SERVABLE, str(servable).lower())
    if reason is not None:
        client.set_model_version_tag(name, version, ONLINE_REASON, reason[:7000])
