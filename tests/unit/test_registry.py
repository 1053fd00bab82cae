"""The champion gate moves an alias only on a measured win; the one failure it
accepts is a champion that cannot score today's rows. Real MLflow registry
(sqlite file store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from lakeforge.tracking import registry


def _client_with_champion(tmp_path: Path) -> MlflowClient:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=str(tmp_path / "model"))
    client.set_registered_model_alias("m", registry.CHAMPION, "1")
    return client


def _gate(client: MlflowClient, score: object) -> registry.GateDecision:
    def score_champion(version: str) -> float:
        if isinstance(score, Exception):
            raise score
        return float(score)  # type: ignore[arg-type]

    return registry.gate(
        client,
        "m",
        "2",
        metric="roc_auc",
        value=0.8,
        smaller_is_better=False,
        margin=0.0,
        score_champion=score_champion,
    )


def test_a_champion_that_cannot_score_keeps_its_alias(tmp_path: Path) -> None:
    client = _client_with_champion(tmp_path)
    decision = _gate(client, registry.CannotScore("column x does not exist"))
    assert not decision.promoted
    assert str(client.get_model_version_by_alias("m", registry.CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias("m", registry.CHALLENGER).version) == "2"


def test_any_other_failure_fails_the_gate_and_moves_nothing(tmp_path: Path) -> None:
    """A passing MLflow or Spark failure is not a verdict on the models."""
    client = _client_with_champion(tmp_path)
    with pytest.raises(RuntimeError, match="connection reset"):
        _gate(client, RuntimeError("connection reset"))
    assert str(client.get_model_version_by_alias("m", registry.CHAMPION).version) == "1"
    with pytest.raises(Exception, match="alias"):
        client.get_model_version_by_alias("m", registry.CHALLENGER)


def test_a_measured_win_moves_the_champion(tmp_path: Path) -> None:
    client = _client_with_champion(tmp_path)
    assert _gate(client, 0.7).promoted
    assert str(client.get_model_version_by_alias("m", registry.CHAMPION).version) == "2"


def _audited(client: MlflowClient, value: float, audit: object) -> registry.GateDecision:
    def audit_champion(version: str) -> list[str]:
        if isinstance(audit, Exception):
            raise audit
        return list(audit)  # type: ignore[call-overload]

    return registry.gate(
        client,
        "m",
        "2",
        metric="roc_auc",
        value=value,
        smaller_is_better=False,
        margin=0.0,
        score_champion=lambda v: 0.9,  # the champion scores better
        audit_champion=audit_champion,
    )


def test_a_champion_is_held_to_todays_fairness_limits(tmp_path: Path) -> None:
    breach = "demographic_parity_difference on sex is 0.30 ..., 0.10 above max_gap 0.2"
    # it meets them: its better metric keeps it
    client = _client_with_champion(tmp_path / "meets")
    decision = _audited(client, 0.8, [])
    assert not decision.promoted and "breaches" not in decision.reason
    # it breaches them: the challenger that meets them replaces it
    client = _client_with_champion(tmp_path / "breaches")
    decision = _audited(client, 0.8, [breach])
    assert decision.promoted and breach in decision.reason
    assert str(client.get_model_version_by_alias("m", registry.CHAMPION).version) == "2"
    # it cannot be measured on today's groups: kept, and the reason says so
    client = _client_with_champion(tmp_path / "unmeasured")
    decision = _audited(client, 0.8, registry.CannotScore("column band does not exist"))
    assert not decision.promoted and "could not be audited" in decision.reason
    assert "column band does not exist" in decision.reason
    # a challenger whose metric is undefined does not replace it
    client = _client_with_champion(tmp_path / "nan")
    decision = _audited(client, float("nan"), [breach])
    assert not decision.promoted and "is undefined: kept" in decision.reason
