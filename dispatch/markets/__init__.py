"""Load per-market rules (products, sustain durations, timelines, curve rules) from TOML.

One data file per market sits beside this module (``ercot.toml``, ``caiso.toml``); the
values come from ``spec/markets.md`` and are corrected there and here, never in code.
This is the one registry of market facts: each product's price series, price node,
direction and sustain duration, and the market's time zone. A product added to a file
(``modeled = true`` with a ``service`` and a ``direction``) is dispatched, bid, awarded
and settled without a code change.
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from dispatch.errors import DispatchInputError

MARKETS_PACKAGE = "dispatch.markets"


@dataclass(frozen=True, slots=True)
class Product:
    """One market product as the bidding side sees it."""

    name: str
    """Our product name (``energy``, ``reg_up``, ``reg_down``, ``spin``, ``ecrs``, …)."""
    code: str
    """The market's own code (``REGUP``, ``RRS``, …)."""
    service: str | None
    """The dispatch model's service carrying it (None when not modeled)."""
    sustain_h: float
    """Sustain duration of an ancillary service [h] (0 for energy)."""
    modeled: bool
    """Whether the dispatch model carries it (bids are made and checked only then)."""
    price_series: str | None = None
    """Product name of its day-ahead price series in the price data (``da_energy``,
    ``rrs_spin``, …); None when the data has no such series."""
    rt_price_series: str | None = None
    """Product name of its real-time price series (energy: ``rt_energy``), if any."""
    offer_group: str | None = None
    """Ancillary-service offer it is submitted in: ``up`` (the linked upward offer),
    ``down`` (Reg-Down, separate) or None (energy, or a market without linking)."""
    offer_column: str | None = None
    """Column of the market's submission file that carries its price (``REGUP``,
    ``RRSPF``, …); None: the product's ``code``."""
    direction: Literal["up", "down"] | None = None
    """Ancillary services: ``up`` (discharge headroom, stored energy) or ``down``
    (charge footroom, room to store); None for energy."""
    price_node: str | None = None
    """Node its price is published at; None: the market's ``as_price_node``
    (ancillary services) or the site's own node (energy)."""

    @property
    def is_reserve(self) -> bool:
        """Whether the product is an ancillary service the dispatch model carries."""
        return self.modeled and self.direction is not None


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Rules of one market read from its data file."""

    name: str
    """Market name, upper case (``ERCOT``)."""
    timezone: str
    """IANA time zone of the market's operating day."""
    day_ahead_close_local: dt.time
    """Day-ahead market close on D-1, market local time."""
    day_ahead_results_local: dt.time
    """Day-ahead results on D-1, market local time."""
    interval_minutes: int
    """Day-ahead interval [minutes]."""
    realtime_interval_minutes: int
    """Real-time settlement interval [minutes]."""
    curve_max_points: int
    """Most (MW, price) points of an energy curve."""
    curve_max_repeats: int
    """Most consecutive points at the same price or at the same MW."""
    price_floor_usd_per_mwh: float
    """Lowest energy offer price [$/MWh]."""
    price_cap_usd_per_mwh: float
    """Highest energy offer price [$/MWh]."""
    as_max_blocks: int
    """Most (MW, price) blocks of an ancillary-service offer."""
    as_price_cap_usd_per_mw: float
    """Highest ancillary-service offer price [$/MW-h]."""
    deploy_up: float
    """Expected deployed fraction of regulation up (0-1)."""
    deploy_down: float
    """Expected deployed fraction of regulation down (0-1)."""
    products: tuple[Product, ...]
    shortfall_charge_factor: float = 1.0
    """An awarded AS quantity not provided is charged back at this multiple of the
    product's clearing price [fraction of the clearing price]."""
    shortfall_planning_adder_usd_per_mw_h: float = 0.0
    """Extra penalty per MW-h of AS shortfall used when re-dispatching (our own risk
    price on top of the charge-back, so that shortfall is a last resort) [$/MW-h]."""
    """Every product of the market, modeled or not."""
    curve_min_points: int = 2
    """Fewest (MW, price) points of an energy curve."""
    curve_mw_step: float = 0.1
    """Quantity resolution of energy curves [MW]."""
    curve_price_step: float = 0.01
    """Price resolution of energy curves [$/MWh]."""
    as_mw_step: float = 0.1
    """Quantity resolution of ancillary-service offers [MW]."""
    as_price_step: float = 0.01
    """Price resolution of ancillary-service offers [$/MW-h]."""
    as_price_node: str = "SYSTEM"
    """Node the market's ancillary-service prices are published (and forecast) at;
    ``site`` means each site's own pricing node."""
    export_format: str = ""
    """Layout of the market's submission files (``ercot-dam/1``, ``caiso-dam/1``)."""
    up_offer_columns: tuple[str, ...] = ()
    """Price columns of the linked upward AS offer, in the market's order; columns
    no product maps to are left empty."""
    status_online: str = "ON"
    """Resource status code of an available resource in the operating plan."""
    status_offline: str = "OUT"
    """Resource status code of an unavailable resource in the operating plan."""

    def as_node(self, site_node: str, product: str | None = None) -> str:
        """Return the price node of an ancillary service for a site at ``site_node``.

        ``product`` (a product or its dispatch service name) with its own
        ``price_node`` uses it; else the market's ``as_price_node`` (``site``: the
        site's own node).
        """
        node = self.as_price_node
        if product is not None:
            by_service = [p for p in self.products if p.service == product]
            found = by_service[0] if by_service else self.product(product)
            node = found.price_node or node
        return site_node if node == "site" else node

    def product(self, name: str) -> Product:
        """Return the product named ``name``.

        Raises
        ------
        DispatchInputError
            When the market has no such product.
        """
        for product in self.products:
            if product.name == name:
                return product
        known = [p.name for p in self.products]
        msg = f"market {self.name}: unknown product {name!r}; known: {known}"
        raise DispatchInputError(msg)

    @property
    def modeled_products(self) -> tuple[Product, ...]:
        """The products the dispatch model carries."""
        return tuple(p for p in self.products if p.modeled)

    def series_of(self, product: str) -> str | None:
        """Day-ahead price series name of ``product`` (None when the data has none)."""
        return self.product(product).price_series

    @property
    def reserve_products(self) -> tuple[Product, ...]:
        """The ancillary services the dispatch model carries, in file order."""
        return tuple(p for p in self.modeled_products if p.is_reserve)

    @property
    def reserve_services(self) -> tuple[str, ...]:
        """Dispatch service names of :attr:`reserve_products`."""
        return tuple(str(p.service) for p in self.reserve_products)

    @property
    def price_products(self) -> tuple[str, ...]:
        """Price series of a scenario node: ``energy``, then every reserve service."""
        return ("energy", *self.reserve_services)

    def reserve(self, service: str) -> Product:
        """Return the reserve product carried by dispatch service ``service``.

        Raises
        ------
        DispatchInputError
            When no modeled ancillary service of the market has that service.
        """
        for p in self.reserve_products:
            if p.service == service:
                return p
        msg = (
            f"market {self.name}: no ancillary service {service!r}; "
            f"known: {list(self.reserve_services)}"
        )
        raise DispatchInputError(msg)

    def deploy_of(self, name: str) -> float:
        """Return the expected deployed fraction of product ``name`` (regulation only; 0-1).

        The dispatch model's rule (``spec/dispatch-model.md``): regulation up and down
        deploy ``deploy_up``/``deploy_down`` of the award as energy; other reserves
        are held, not deployed, in the plan.
        """
        service = str(self.product(name).service)
        return {"reg_up": self.deploy_up, "reg_down": self.deploy_down}.get(
            service, 0.0
        )

    def scenario_products(self) -> dict[str, dict[str, Any]]:
        """Return the scenario's ``products`` block: direction and sustain [h]."""
        return {
            str(p.service): {"direction": p.direction, "sustain_h": p.sustain_h}
            for p in self.reserve_products
        }

    @property
    def reserve_duration_h(self) -> float:
        """The longest modeled AS sustain [h], a scenario's default duration.

        Each product carries its own in :meth:`scenario_products`.
        """
        return max((p.sustain_h for p in self.modeled_products), default=0.0)


def available_markets() -> list[str]:
    """Names of the markets that have a data file."""
    files = resources.files(MARKETS_PACKAGE).iterdir()
    return sorted(
        f.name.removesuffix(".toml").upper() for f in files if f.name.endswith(".toml")
    )


def _time(value: Any, where: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        msg = f"{where}={value!r} must be a local time HH:MM"
        raise DispatchInputError(msg) from None


def parse_market_rules(data: dict[str, Any], source: str) -> MarketRules:
    """Build :class:`MarketRules` from a decoded market file.

    Raises
    ------
    DispatchInputError
        Naming the file and the missing or bad field.
    """
    try:
        curve = data["energy_curve"]
        offer = data["as_offer"]
        reg = data.get("regulation", {})
        export = data.get("export", {})
        products = tuple(
            Product(
                name=name,
                code=str(p["code"]),
                service=p.get("service"),
                sustain_h=float(p.get("sustain_h", 0.0)),
                modeled=bool(p.get("modeled", False)),
                price_series=p.get("price_series"),
                rt_price_series=p.get("rt_price_series"),
                offer_group=p.get("offer_group"),
                offer_column=p.get("offer_column"),
                direction=p.get("direction"),
                price_node=p.get("price_node"),
            )
            for name, p in data["products"].items()
        )
        rules = MarketRules(
            name=str(data["name"]).upper(),
            timezone=str(data["timezone"]),
            day_ahead_close_local=_time(
                data["day_ahead_close_local"], f"{source}: day_ahead_close_local"
            ),
            day_ahead_results_local=_time(
                data["day_ahead_results_local"], f"{source}: day_ahead_results_local"
            ),
            interval_minutes=int(data["interval_minutes"]),
            realtime_interval_minutes=int(data["realtime_interval_minutes"]),
            curve_max_points=int(curve["max_points"]),
            curve_max_repeats=int(curve["max_repeats"]),
            price_floor_usd_per_mwh=float(curve["price_floor_usd_per_mwh"]),
            price_cap_usd_per_mwh=float(curve["price_cap_usd_per_mwh"]),
            as_max_blocks=int(offer["max_blocks"]),
            as_price_cap_usd_per_mw=float(offer["price_cap_usd_per_mw"]),
            deploy_up=float(reg.get("deploy_up", 0.0)),
            deploy_down=float(reg.get("deploy_down", 0.0)),
            products=products,
            shortfall_charge_factor=float(
                data.get("shortfall", {}).get("charge_factor", 1.0)
            ),
            shortfall_planning_adder_usd_per_mw_h=float(
                data.get("shortfall", {}).get("planning_adder_usd_per_mw_h", 0.0)
            ),
            curve_min_points=int(curve.get("min_points", 2)),
            curve_mw_step=float(curve.get("mw_step", 0.1)),
            curve_price_step=float(curve.get("price_step", 0.01)),
            as_mw_step=float(offer.get("mw_step", 0.1)),
            as_price_step=float(offer.get("price_step", 0.01)),
            as_price_node=str(data.get("as_price_node", "SYSTEM")),
            export_format=str(export.get("format", "")),
            up_offer_columns=tuple(str(c) for c in export.get("up_offer_columns", ())),
            status_online=str(export.get("status_online", "ON")),
            status_offline=str(export.get("status_offline", "OUT")),
        )
    except KeyError as exc:
        msg = f"{source}: missing field {exc.args[0]!r}"
        raise DispatchInputError(msg) from None
    except (TypeError, ValueError) as exc:
        msg = f"{source}: bad value: {exc}"
        raise DispatchInputError(msg) from None
    steps = {
        "energy_curve.mw_step": rules.curve_mw_step,
        "energy_curve.price_step": rules.curve_price_step,
        "as_offer.mw_step": rules.as_mw_step,
        "as_offer.price_step": rules.as_price_step,
    }
    for key, step in steps.items():
        if not 0 < step <= 1:
            msg = f"{source}: {key}={step:g} must be in (0, 1]"
            raise DispatchInputError(msg)
    for p in rules.products:
        if p.direction not in (None, "up", "down"):
            msg = f"{source}: products.{p.name}.direction={p.direction!r} must be up or down"
            raise DispatchInputError(msg)
        if p.sustain_h < 0:
            msg = f"{source}: products.{p.name}.sustain_h={p.sustain_h:g} must be >= 0"
            raise DispatchInputError(msg)
        if p.offer_group not in (None, "up", "down"):
            msg = f"{source}: products.{p.name}.offer_group={p.offer_group!r} must be up or down"
            raise DispatchInputError(msg)
    if not 1 <= rules.curve_min_points <= rules.curve_max_points:
        msg = (
            f"{source}: energy_curve.min_points={rules.curve_min_points} must be in "
            f"1..max_points={rules.curve_max_points}"
        )
        raise DispatchInputError(msg)
    if rules.curve_max_points < 2:
        msg = f"{source}: energy_curve.max_points={rules.curve_max_points} must be >= 2"
        raise DispatchInputError(msg)
    for p in rules.modeled_products:
        if p.service is None:
            msg = f"{source}: products.{p.name} is modeled but names no service"
            raise DispatchInputError(msg)
        if p.service != p.name:
            msg = (
                f"{source}: products.{p.name}.service={p.service!r} must equal the "
                "product name (bids, awards and settlement items use one name)"
            )
            raise DispatchInputError(msg)
        if p.service != "energy" and p.direction is None:
            msg = (
                f"{source}: products.{p.name} is a modeled service but has no direction"
            )
            raise DispatchInputError(msg)
    services = [p.service for p in rules.modeled_products]
    dup = sorted({s for s in services if services.count(s) > 1 and s is not None})
    if dup:
        msg = f"{source}: service(s) {dup} carried by more than one modeled product"
        raise DispatchInputError(msg)
    return rules


@functools.cache
def load_market_rules(market: str) -> MarketRules:
    """Return the rules of ``market`` (case-insensitive) from its data file.

    Raises
    ------
    DispatchInputError
        When the market has no data file or the file is malformed.
    """
    name = market.strip().lower()
    resource = resources.files(MARKETS_PACKAGE).joinpath(f"{name}.toml")
    if not name.isalnum() or not resource.is_file():
        msg = (
            f"market={market!r} has no rules file; known markets: {available_markets()}"
        )
        raise DispatchInputError(msg)
    try:
        data = tomllib.loads(resource.read_text())
    except tomllib.TOMLDecodeError as exc:
        msg = f"{name}.toml: invalid TOML: {exc}"
        raise DispatchInputError(msg) from None
    return parse_market_rules(data, f"{name}.toml")


def market_timezone(market: str) -> str:
    """Return the IANA time zone of ``market``'s operating day (from its rules file).

    Raises
    ------
    DispatchInputError
        When the market has no rules file.
    """
    return load_market_rules(market).timezone


def parse_market_toml(text: str, source: str = "market rules") -> MarketRules:
    """Parse the text of a market rules file (the format of ``ercot.toml``).

    Raises
    ------
    DispatchInputError
        For invalid TOML or a missing or bad field.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{source}: invalid TOML: {exc}"
        raise DispatchInputError(msg) from None
    return parse_market_rules(data, source)
