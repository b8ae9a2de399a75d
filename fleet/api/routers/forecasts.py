"""Price forecasts by market, node and product, with quantiles and issue time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from fleet.api import queries
from fleet.api.deps import StoreDep, ViewerKey
from fleet.api.errors import NotFoundError
from fleet.api.routers._common import AUTH_RESPONSES, NOT_FOUND, as_utc, market_name
from fleet.api.schemas import ApiDatetime, ForecastOut, ForecastPointOut

router = APIRouter(prefix="/v1", tags=["forecasts"], responses=AUTH_RESPONSES)


@router.get("/forecasts/prices", response_model=ForecastOut, responses=NOT_FOUND)
def price_forecast(
    engine: StoreDep,
    _key: ViewerKey,
    market: Annotated[str, Query(pattern=r"^[A-Za-z]{2,16}$", examples=["ERCOT"])],
    node: Annotated[
        str, Query(pattern=r"^[A-Z0-9][A-Z0-9_-]{0,63}$", examples=["HB_HOUSTON"])
    ],
    product: Annotated[
        str,
        Query(pattern=r"^(energy|reg_up|reg_down|spin|capacity)$", examples=["energy"]),
    ] = "energy",
    issued_before: Annotated[
        ApiDatetime | None,
        Query(
            description="Newest forecast issued at or before this time; default: newest."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> ForecastOut:
    """Return the newest price forecast (p10/p50/p90) for a market, node, product."""
    mkt = market_name(market, "query")
    before = None if issued_before is None else as_utc(issued_before, "issued_before")
    with engine.connect() as conn:
        head, points = queries.forecast(
            conn,
            market=mkt,
            node=node,
            product=product,
            issued_before=before,
            limit=limit,
        )
    if head is None:
        msg = f"market={mkt} node={node} product={product}: no forecast stored"
        raise NotFoundError(msg)
    return ForecastOut(
        market=mkt,
        node=node,
        product=product,
        issue_time=head["issue_time"],
        model_version=head["model_version"],
        unit=head["unit"],
        points=[ForecastPointOut(**p) for p in points],
    )
