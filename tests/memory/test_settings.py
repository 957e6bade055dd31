"""The memory settings go through the schema like every other setting."""

from __future__ import annotations

from typing import Any

import pytest

from synapse.errors import SettingsError
from synapse.settings import DEFAULTS
from synapse.settings_schema import validate


def test_defaults() -> None:
    assert {k: DEFAULTS[k] for k in ("memory_model", "memory_auto_extract", "memory_top_k", "memory_min_similarity")} \
        == {"memory_model": "", "memory_auto_extract": True, "memory_top_k": 5, "memory_min_similarity": ""}


def test_min_similarity_is_a_number_or_empty(cli: Any) -> None:
    assert validate("memory_min_similarity", "0.8") == 0.8
    assert validate("memory_min_similarity", " ") == ""
    with pytest.raises(SettingsError, match="memory_min_similarity must be a number in \\[-1, 1\\], or empty for"):
        validate("memory_min_similarity", "high")
    with pytest.raises(SettingsError):
        validate("memory_top_k", 0)
    r = cli("config", "set", "memory_min_similarity", "0.82")
    assert r.code == 0 and cli("config", "get", "memory_min_similarity").out.strip() == "0.82"
