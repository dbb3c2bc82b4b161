"""Model versions: production pointer, promotion history, rollback, damage."""

from __future__ import annotations

import pytest

from pdm.model import registry
from pdm.model.directory import ModelDirectoryError, save
from tests.model.test_directory import _bundle


def test_newest_valid_version_is_production_until_one_is_promoted(tmp_path):
    assert registry.production_version(tmp_path) is None
    with pytest.raises(ModelDirectoryError, match="no trained model"):
        registry.production_path(tmp_path)
    a = save(_bundle(), tmp_path, "20260101T000000Z-aaaaaa")
    b = save(_bundle(), tmp_path, "20260102T000000Z-bbbbbb")
    assert registry.production_path(tmp_path) == b
    registry.promote(tmp_path, a.name, reason="first")
    assert registry.production_path(tmp_path) == a
    registry.promote(tmp_path, b.name, reason="retrained", metrics={"recall_72h": 1.0})
    assert registry.production_version(tmp_path) == b.name
    assert registry.rollback(tmp_path) == a.name
    assert registry.production_version(tmp_path) == a.name
    assert [h["version"] for h in registry.history(tmp_path)] == [a.name, b.name, a.name]
    listed = registry.versions(tmp_path)
    assert [v["version"] for v in listed] == [a.name, b.name] and all(v["valid"] for v in listed)


def test_a_corrupt_version_cannot_be_promoted_and_is_listed_as_invalid(tmp_path):
    a = save(_bundle(), tmp_path, "20260101T000000Z-aaaaaa")
    (a / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirectoryError):
        registry.promote(tmp_path, a.name)
    assert registry.versions(tmp_path)[0]["valid"] is False
    assert registry.production_version(tmp_path) is None


def test_a_corrupt_pointer_file_gives_a_clear_error(tmp_path):
    save(_bundle(), tmp_path, "20260101T000000Z-aaaaaa")
    (tmp_path / registry.POINTER).write_text("{not json")
    with pytest.raises(ModelDirectoryError, match="corrupt"):
        registry.production_path(tmp_path)


def test_rollback_without_history_is_refused(tmp_path):
    a = save(_bundle(), tmp_path, "20260101T000000Z-aaaaaa")
    registry.promote(tmp_path, a.name)
    with pytest.raises(ModelDirectoryError, match="no previous"):
        registry.rollback(tmp_path)
