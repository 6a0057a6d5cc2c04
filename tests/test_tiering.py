"""The price table and cost estimates: defaults with provenance, overridable, and bad files refused in one line."""

from __future__ import annotations

import json

import pytest

from sync_core.errors import ConfigError
from sync_core.storage.tiering import GB, PriceTable, estimate, is_online, normalize_tier, read_cost


def test_builtin_prices_say_when_and_where_they_are_from():
    prices = PriceTable.load(env={})
    assert prices.source == "built-in"
    assert prices.as_of and prices.region and prices.redundancy and prices.currency
    hot, cool, cold, archive = (prices.storage_per_gb_month[t] for t in ("Hot", "Cool", "Cold", "Archive"))
    assert hot > cool > cold > archive > 0
    assert prices.read_per_gb["Hot"] == 0 < prices.read_per_gb["Cool"] < prices.read_per_gb["Cold"]


def test_a_users_price_file_wins(tmp_path):
    mine = {
        "as_of": "2026-12", "region": "westeurope", "redundancy": "GRS", "currency": "EUR",
        "storage_per_gb_month": {"Hot": 0.04, "Cool": 0.02, "Cold": 0.008, "Archive": 0.002},
        "read_per_gb": {"Hot": 0, "Cool": 0.01, "Cold": 0.03, "Archive": 0.02},
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(mine))
    prices = PriceTable.load(env={"AZPHOTOSYNC_PRICES": str(path)})
    assert prices.currency == "EUR" and prices.storage_per_gb_month["Hot"] == 0.04
    assert "westeurope" in prices.describe() and str(path) in prices.describe()


@pytest.mark.parametrize(
    "content, needle",
    [
        ("not json", "cannot read the price table"),
        ("[]", "expected a JSON object"),
        ('{"storage_per_gb_month": {"Hot": 1, "Cool": 1, "Cold": 1}, "read_per_gb": {}}', "no price for Archive"),
        ('{"storage_per_gb_month": {"Hot": -1, "Cool": 1, "Cold": 1, "Archive": 1}, "read_per_gb": {}}',
         "is not a price"),
        ('{"storage_per_gb_month": {"Hot": "cheap", "Cool": 1, "Cold": 1, "Archive": 1}}', "is not a price"),
    ],
)
def test_a_bad_price_file_is_one_clear_line(tmp_path, content, needle):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        PriceTable.load(path)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_missing_price_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the price table"):
        PriceTable.load(tmp_path / "absent.json")


def test_estimate_of_the_worked_example():
    """docs/tiering.md: 500 GB, 4 GB Hot, 20 GB Cool, the rest Cold."""
    prices = PriceTable.load(env={})
    est = estimate({"Hot": 4 * GB, "Cool": 20 * GB, "Cold": 476 * GB}, prices)
    p = prices.storage_per_gb_month
    assert est.monthly_total == pytest.approx(4 * p["Hot"] + 20 * p["Cool"] + 476 * p["Cold"])
    assert est.monthly_if_all_hot == pytest.approx(500 * p["Hot"])
    assert est.monthly_total < est.monthly_if_all_hot / 3
    assert est.read_all_once == pytest.approx(20 * prices.read_per_gb["Cool"] + 476 * prices.read_per_gb["Cold"])
    assert est.to_dict()["bytes_by_tier"] == {"Hot": 4 * GB, "Cool": 20 * GB, "Cold": 476 * GB}


def test_tier_names_from_listings_and_rows():
    assert normalize_tier("cool") == "Cool"
    assert normalize_tier(None) == "Hot"  # no explicit tier: the account default
    assert normalize_tier("Premium") == "Hot"
    assert is_online("Cold") and not is_online("Archive")
    assert read_cost({"archive": GB}, PriceTable.load(env={})) == pytest.approx(0.02)
