"""Access tiers and what they cost: the price table a person can override, and estimates built on it.

Prices are data, not code: the defaults ship as ``data/storage-prices.json`` with the date, region and
redundancy they were read for, and ``AZPHOTOSYNC_PRICES`` (or ``--prices``) names a file of one's own.
Everything here is arithmetic on byte counts the caller already has (the index and one listing), so an
estimate never costs a request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sync_core.config import ENV_PRICES
from sync_core.errors import ConfigError

TIERS = ("Hot", "Cool", "Cold", "Archive")
ONLINE_TIERS = frozenset({"Hot", "Cool", "Cold"})
GB = 1024**3  # Azure bills storage per GiB, and calls it GB


def normalize_tier(value: object) -> str:
    """The service's tier name (``'Cool'``) from whatever a listing or a row holds; unknown means Hot,
    the account default a blob without an explicit tier inherits."""
    text = str(value or "").strip().capitalize()
    return text if text in TIERS else "Hot"


def is_online(tier: object) -> bool:
    """Whether a blob in this tier can be read now (Archive needs rehydration first)."""
    return normalize_tier(tier) in ONLINE_TIERS


ARCHIVED_ERROR = "BlobArchived"  # the service's refusal to read or copy a blob in the Archive tier
REHYDRATE_PENDING = "rehydrate-pending-to-"  # archive status of a blob on its way back online


def is_archived_error(exc: BaseException) -> bool:
    """Whether a storage error is the refusal of a blob that sits in the Archive tier (409 BlobArchived); the
    SDK may raise it as any HttpResponseError subclass, so the code decides, not the type."""
    return str(getattr(exc, "error_code", "") or "") == ARCHIVED_ERROR


def is_rehydrating(archive_status: object) -> bool:
    """Whether an archived blob's rehydration was already asked for and is under way."""
    return str(archive_status or "").lower().startswith(REHYDRATE_PENDING)


def add_tier_bytes(into: dict[str, int], blobs: Iterable[Any]) -> dict[str, int]:
    """Add the sizes of listed blobs (anything with ``size`` and ``tier``) to ``into``, by tier."""
    for blob in blobs:
        tier = normalize_tier(getattr(blob, "tier", ""))
        into[tier] = into.get(tier, 0) + int(blob.size)
    return into


def merge_tier_bytes(into: dict[str, int], more: Mapping[str, Any]) -> dict[str, int]:
    """Add one bytes-by-tier mapping (a partition's, a report's) to another."""
    for tier, n in more.items():
        key = normalize_tier(tier)
        into[key] = into.get(key, 0) + int(n)
    return into


@dataclass(frozen=True)
class PriceTable:
    """Per-GB prices for each tier, with the provenance a person needs to judge them."""

    as_of: str
    region: str
    redundancy: str
    currency: str
    storage_per_gb_month: Mapping[str, float]
    read_per_gb: Mapping[str, float]
    minimum_days: Mapping[str, int] = field(default_factory=dict)
    source: str = "built-in"

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> PriceTable:
        """The table from ``path``, else ``$AZPHOTOSYNC_PRICES``, else the built-in defaults."""
        env = os.environ if env is None else env
        chosen = path or env.get(ENV_PRICES) or None
        if chosen is None:
            text = resources.files("sync_core").joinpath("data/storage-prices.json").read_text(encoding="utf-8")
            return cls.from_dict(json.loads(text), source="built-in")
        try:
            data = json.loads(Path(chosen).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the price table {chosen}: {exc}") from exc
        return cls.from_dict(data, source=str(chosen))

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> PriceTable:
        """Validate a parsed price file: every tier priced, every price a finite number ≥ 0."""
        if not isinstance(data, dict):
            raise ConfigError(f"price table {source}: expected a JSON object")

        def prices(key: str, *, required: bool) -> dict[str, float]:
            raw = data.get(key, {})
            if not isinstance(raw, dict):
                raise ConfigError(f"price table {source}: {key} must map tiers to numbers")
            out: dict[str, float] = {}
            for tier in TIERS:
                if tier not in raw:
                    if required:
                        raise ConfigError(f"price table {source}: {key} has no price for {tier}")
                    continue
                value = raw[tier]
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                    raise ConfigError(f"price table {source}: {key}.{tier} is not a price: {value!r}")
                out[tier] = float(value)
            return out

        return cls(
            as_of=str(data.get("as_of", "unknown date")),
            region=str(data.get("region", "unknown region")),
            redundancy=str(data.get("redundancy", "unknown redundancy")),
            currency=str(data.get("currency", "")),
            storage_per_gb_month=prices("storage_per_gb_month", required=True),
            read_per_gb=prices("read_per_gb", required=True),
            minimum_days={t: int(v) for t, v in prices("minimum_days", required=False).items()},
            source=source,
        )

    def describe(self) -> str:
        """One line saying where the figures come from."""
        return f"{self.currency} list prices for {self.redundancy} in {self.region} as of {self.as_of} ({self.source})"


@dataclass(frozen=True)
class CostEstimate:
    """Monthly storage cost of bytes held in each tier, and what reading all of them once would cost."""

    bytes_by_tier: Mapping[str, int]
    monthly_by_tier: Mapping[str, float]
    monthly_total: float
    monthly_if_all_hot: float
    read_all_once: float
    prices: PriceTable

    def to_dict(self) -> dict[str, Any]:
        return {
            "bytes_by_tier": dict(self.bytes_by_tier),
            "monthly_by_tier": {t: round(v, 4) for t, v in self.monthly_by_tier.items()},
            "monthly_total": round(self.monthly_total, 4),
            "monthly_if_all_hot": round(self.monthly_if_all_hot, 4),
            "read_all_once": round(self.read_all_once, 4),
            "currency": self.prices.currency,
            "prices": self.prices.describe(),
        }


def estimate(bytes_by_tier: Mapping[str, int], prices: PriceTable) -> CostEstimate:
    """What the archive costs per month as it is tiered, against keeping it all Hot."""
    counts = {normalize_tier(t): 0 for t in TIERS}
    for tier, size in bytes_by_tier.items():
        counts[normalize_tier(tier)] += max(int(size), 0)
    monthly = {t: counts[t] / GB * prices.storage_per_gb_month[t] for t in TIERS if counts[t]}
    total_bytes = sum(counts.values())
    return CostEstimate(
        bytes_by_tier={t: n for t, n in counts.items() if n},
        monthly_by_tier=monthly,
        monthly_total=sum(monthly.values()),
        monthly_if_all_hot=total_bytes / GB * prices.storage_per_gb_month["Hot"],
        read_all_once=read_cost(counts, prices),
        prices=prices,
    )


def read_cost(bytes_by_tier: Mapping[str, int], prices: PriceTable) -> float:
    """Retrieval charge for reading these bytes once (deep verification, restore); egress not included."""
    return sum(max(int(n), 0) / GB * prices.read_per_gb[normalize_tier(t)] for t, n in bytes_by_tier.items())


def read_cost_figure(bytes_by_tier: Mapping[str, int], prices: PriceTable | None = None) -> dict[str, Any]:
    """The retrieval charge of reading these bytes once, as a report carries it: amount, currency and where
    the prices come from; a price file that cannot be read is named instead, never fatal to the caller."""
    try:
        table = prices or PriceTable.load()
    except ConfigError as exc:
        return {"error": str(exc)}
    return {"amount": round(read_cost(bytes_by_tier, table), 4), "currency": table.currency, "prices": table.describe()}
