"""The lifecycle policy in infra/: originals age into cheaper tiers, Archive is off by default, and nothing
but the data container is ever tiered (renditions, catalog, reports and the Table stay Hot)."""

from __future__ import annotations

from typing import Any

from tests.infra_helpers import INFRA, MODULES, parse, property_path

LIFECYCLE = MODULES / "lifecycle.bicep"
MAIN = INFRA / "main.bicep"


def _default(template: dict[str, Any], name: str) -> Any:
    return template["parameters"][name]["default"]


def _rules(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [template["variables"][n]["value"] for n in ("originalsRule", "safetyCopiesRule")]


def test_policy_defaults_cool_then_cold_and_no_archive():
    t = parse(LIFECYCLE)
    cool, cold = _default(t, "coolAfterDays"), _default(t, "coldAfterDays")
    assert 0 < cool < cold
    assert _default(t, "archiveAfterDays") == 0, "Archive must be opt-in"
    assert _default(t, "versionDeleteAfterDays") == 0, "safety copies are kept unless the operator opts in"
    assert 0 < _default(t, "versionColdAfterDays") < cool, "safety copies tier sooner than originals"
    for name, param in t["parameters"].items():
        assert any(d["type"] == "description" for d in param["decorators"]), f"{name} has no documented trade-off"


def test_only_the_data_container_is_tiered():
    t = parse(LIFECYCLE)
    for rule in _rules(t):
        assert rule["definition"]["filters"]["prefixMatch"] == ["${dataContainerName}/"], rule["name"]
        assert rule["definition"]["filters"]["blobTypes"] == ["blockBlob"]
    text = LIFECYCLE.read_text()
    for other in ("thumbnails", "reports", "catalog"):
        assert f"'{other}" not in text


def test_archive_action_only_when_enabled_and_keeps_rehydrated_blobs_online():
    t = parse(LIFECYCLE)
    op = t["variables"]["archiveTier"]["value"]["operator"]
    assert op["type"] == "conditional"
    assert op["operands"]["false_value"] == {}
    action = op["operands"]["true_value"]["tierToArchive"]
    assert action["daysAfterCreationGreaterThan"] == "archiveAfterDays"
    assert action["daysAfterLastTierChangeGreaterThan"] >= 1


def test_originals_age_by_creation_not_access():
    text = LIFECYCLE.read_text()
    assert "daysAfterLastAccessTimeGreaterThan" not in text
    assert "enableAutoTierToHotFromCool" not in text


def test_main_passes_every_lifecycle_setting_through():
    main = parse(MAIN)
    module = main["modules"]["lifecycle"]
    given = module["config"]["params"]
    names = ("coolAfterDays", "coldAfterDays", "archiveAfterDays", "versionColdAfterDays", "versionDeleteAfterDays")
    for name in names:
        assert given[name] == name, name
        assert main["parameters"][name]["default"] == _default(parse(LIFECYCLE), name), name
    assert property_path(given["dataContainerName"]) == "archive.outputs.dataContainerName"
