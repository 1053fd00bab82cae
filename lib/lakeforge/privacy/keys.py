"""The pseudonymisation key and the one definition of a pseudonym.

A pseudonym is the hex HMAC-SHA256, under the dataset's key, of the value's
text (UTF-8). The key is read from the environment variable the `privacy:`
block names, never from a file; the Spark-side implementation (protect.py)
must give exactly `pseudonym(key, text)` for every value, and `forget` uses
this function to find a subject whose id it is given in clear. A value is
first `normalised` (trimmed of spaces, tabs and line breaks; a blank one is
null), on both sides, so " C-1" and "C-1" are one subject.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from lakeforge.config.privacy import Privacy
from lakeforge.errors import ConfigError

# what `normalised` trims; protect.py's SQL trims the same characters
BLANKS = " \t\n\r"
# shorter keys make the pseudonyms guessable by brute force over the ids
MIN_KEY_BYTES = 16


def privacy_key(privacy: Privacy, dataset: str) -> bytes:
    """The HMAC key from `privacy.key_env`. Raises ConfigError naming the
    variable when it is unset or shorter than MIN_KEY_BYTES."""
    if privacy.key_env is None:
        raise ConfigError(f"dataset {dataset}: privacy.key_env is not set")
    value = os.environ.get(privacy.key_env, "")
    if not value:
        raise ConfigError(
            f"dataset {dataset}: the pseudonymisation key variable {privacy.key_env} is not "
            "set (privacy.key_env); export it before ingest or forget"
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"dataset {dataset}: {privacy.key_env} holds {len(key)} bytes; a pseudonymisation "
            f"key needs at least {MIN_KEY_BYTES}"
        )
    return key


def pseudonym(key: bytes, text: str) -> str:
    """Hex HMAC-SHA256 of `text` (UTF-8) under `key`: 64 lowercase hex chars."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def normalised(text: str) -> str | None:
    """`text` as protected: trimmed of BLANKS at both ends; None when nothing
    is left. Call it before `pseudonym` on an id given in clear."""
    stripped = text.strip(BLANKS)
    return stripped or None


# the text whose pseudonym tells two keys apart (versioned: changing it
# would make every recorded check value differ)
_CHECK_TEXT = "lakeforge key check v1"


def key_check(key: bytes) -> str:
    """16 hex characters that are equal for equal keys and differ (but for a
    2^-64 chance) otherwise: recorded where the key was used, so a later
    process can tell it holds the same key without the key being stored.
    Reveals no more than any pseudonym of a known text does."""
    return pseudonym(key, _CHECK_TEXT)[:16]
