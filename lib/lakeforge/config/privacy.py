"""What a dataset's `privacy:` block says: which columns hold personal data and
what happens to each before bronze is written (so the raw value never lands in
a table, a quarantine, a log or an MLflow artefact), and what the ingest-time
PII scan does about personal-looking columns the block does not cover.

    privacy:
      key_env: LAKEFORGE_PRIVACY_KEY   # the HMAC key's environment variable
      undeclared: warn                 # warn | fail | ignore
      undeclared_share: 0.5            # share of values that makes a column look personal
      columns:
        customer_id: {action: pseudonymise}
        card_number: {action: mask, keep_last: 4}
        age: {action: generalise, band: 10}
        birth_date: {action: generalise, to: month}
        postcode: {action: generalise, prefix: 3}
        full_name: {action: drop}

The key itself is never in a file: only the name of the variable that holds it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lakeforge.config.base import Model

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Protection(Model):
    """One column's treatment.

    - `pseudonymise`: keyed HMAC-SHA256 of the value as text, hex (64 chars);
      deterministic under one key, so keys, dedupe and joins still work.
    - `mask`: every character but the last `keep_last` (or first `keep_first`)
      becomes `mask_char`; the column stays text.
    - `generalise`: a number to the lower bound of its `band` (37 → 30 with
      band 10), a date or timestamp to the first day of its `to` (month or
      year), a text to its first `prefix` characters.
    - `drop`: the column never reaches bronze.
    """

    action: Literal["pseudonymise", "mask", "generalise", "drop"]
    keep_last: Annotated[int, Field(ge=0)] | None = None
    keep_first: Annotated[int, Field(ge=0)] | None = None
    mask_char: Annotated[str, Field(min_length=1, max_length=1)] = "*"
    band: Annotated[float, Field(gt=0)] | None = None
    to: Literal["month", "year"] | None = None
    prefix: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _options_fit_action(self) -> Protection:
        given = {
            name
            for name in ("keep_last", "keep_first", "band", "to", "prefix")
            if getattr(self, name) is not None
        }
        allowed = {
            "pseudonymise": set(),
            "drop": set(),
            "mask": {"keep_last", "keep_first"},
            "generalise": {"band", "to", "prefix"},
        }[self.action]
        stray = sorted(given - allowed)
        if stray:
            raise ValueError(f"{', '.join(stray)} is not an option of action {self.action}")
        if self.action == "mask" and len(given) > 1:
            raise ValueError("mask keeps either keep_last or keep_first characters, not both")
        if self.action == "generalise" and len(given) != 1:
            raise ValueError(
                "generalise needs exactly one of band (numbers), to (dates), prefix (text)"
            )
        return self


class Privacy(Model):
    # name of the environment variable holding the pseudonymisation key
    key_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    # what the ingest-time PII scan does about personal-looking columns the
    # block does not cover
    undeclared: Literal["warn", "fail", "ignore"] = "warn"
    # the share of a column's non-null values that must look like one kind of
    # personal data (e-mail, phone, card, national id) for the scan to report
    # it: half by default, so a column of 13-19-digit ids (one in ten passes
    # the card check by chance) or a free-text column quoting an address now
    # and then stays quiet
    undeclared_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    columns: dict[str, Protection] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_when_needed(self) -> Privacy:
        if self.key_env is None and any(p.action == "pseudonymise" for p in self.columns.values()):
            raise ValueError(
                "pseudonymise needs key_env: the name of the environment variable that "
                "holds the HMAC key (the key itself never goes in a file)"
            )
        return self

    def action_of(self, column: str) -> str | None:
        found = self.columns.get(column)
        return found.action if found else None

    @property
    def dropped(self) -> list[str]:
        return [c for c, p in self.columns.items() if p.action == "drop"]

    @property
    def as_text(self) -> list[str]:
        """Columns pseudonymised or masked: they reach bronze as opaque text."""
        return [c for c, p in self.columns.items() if p.action in ("pseudonymise", "mask")]
