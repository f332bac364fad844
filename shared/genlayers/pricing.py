"""Cost of one call from the price table in ``logic.yaml`` (``genlayers.prices``)."""

from __future__ import annotations

from shared.config.models import PriceEntry


def find_price(prices: dict[str, dict[str, PriceEntry]], provider: str, model: str) -> PriceEntry | None:
    table = prices.get(provider) or {}
    return table.get(model) or table.get("*")


def cost_usd(
    prices: dict[str, dict[str, PriceEntry]],
    *,
    provider: str,
    model: str,
    kind: str = "llm",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cached_tokens: int = 0,
    units: float = 0,
) -> float | None:
    """USD for the call, or ``None`` when the table has no price for this provider and model.

    ``prompt_tokens`` includes ``cached_tokens``; cached ones are charged at the cached price.
    """
    price = find_price(prices, provider, model)
    if price is None:
        return None
    if kind != "llm":
        return float(units) * price.unit
    cached = min(cached_tokens, prompt_tokens)
    cached_price = price.cached if price.cached is not None else price.prompt
    return (
        (prompt_tokens - cached) * price.prompt + cached * cached_price + completion_tokens * price.completion
    ) / 1_000_000
