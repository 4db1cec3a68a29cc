"""The operator's price table: hourly pay-as-you-go prices per Azure ML instance type, read from
`prices.csv` beside the policy file (columns `instance_type,hourly_price`; `#` starts a comment).

Azure publishes its retail prices through the Azure Retail Prices API, no sign-in needed:
https://prices.azure.com/api/retail/prices with an OData `$filter`, e.g.
`serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and armSkuName eq 'Standard_DS3_v2'
and priceType eq 'Consumption'` (Learn, "Azure Retail Prices overview",
https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices; which meter
an online deployment's instances bill under is UNVERIFIED here: check the invoice);
docs/OPERATIONS.md shows how to refresh the file.
The table is copied into each rollout's policy snapshot at its start, so a rollout's figures never
change under it.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

PRICE_FILE = "prices.csv"


class PriceTableError(ValueError):
    """The price table cannot be read; the message names the file and line."""


def parse_prices(text: str, where: str = PRICE_FILE) -> dict[str, float]:
    prices: dict[str, float] = {}
    rows = csv.reader(io.StringIO(text))
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        if cells[0].lower() == "instance_type":
            continue  # the header
        if len(cells) < 2:
            raise PriceTableError(f"{where} line {number}: expected `instance_type,hourly_price`, got {row!r}")
        try:
            price = float(cells[1])
        except ValueError:
            raise PriceTableError(f"{where} line {number}: hourly_price {cells[1]!r} is not a number") from None
        if not math.isfinite(price) or price < 0:
            raise PriceTableError(f"{where} line {number}: hourly_price must be 0 or more, got {cells[1]!r}")
        prices[cells[0]] = price
    return prices


def prices_beside(policy_path: Path) -> dict[str, float] | None:
    """The price table next to the policy file; None when there is none."""
    path = policy_path.parent / PRICE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PriceTableError(f"{path}: {exc}") from None
    return parse_prices(text, str(path))
