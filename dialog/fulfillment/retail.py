"""The `Retail` fulfillment: nearest store, item prices and stock (WP-7328's retail flow).

Reads `intent` (`find_the_store`, `check_item_price`, `retail_inventory_check`, or the
NLU's `store_location` / `price_check` / `inventory_check`), `location`, `item`,
`store_type` and `sort` (`rating.high`, `cost.low`, ...); writes `retail_status`.

Sources (settings `retail_store_provider`, `retail_price_provider`):
- `catalog`: the embedded SQL catalog (the default, offline);
- `yelp`: a Yelp-Fusion-style business search (`GET /v3/businesses/search`, bearer key
  from CALLSENSE_YELP_API_KEY) for stores;
- `ebay`: an eBay-Browse-style item search (`GET /buy/browse/v1/item_summary/search`,
  bearer token from CALLSENSE_EBAY_TOKEN) for prices.
Stock is always the catalog's (neither service knows a store's shelves).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping

from callsense.dialog.fulfillment.base import FulfillmentError, FulfillmentProvider, FulfillmentResources, fulfillment_providers
from callsense.dialog.fulfillment.catalog import Catalog, OfferHit, StoreHit
from callsense.dialog.fulfillment.http import HttpFailure, get_json
from callsense.dialog.nlu import labels
from callsense.core.registry import Registry

SORT_WORDS = {
    "rating.high": "highest-rated", "rating.low": "lowest-rated", "rating.average": "",
    "cost.low": "cheapest", "cost.high": "most expensive", "cost.average": "",
}


def _money(value: float, currency: str = "USD") -> str:
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}.get(currency, "")
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"


def _street(address: str) -> str:
    return address.split(",")[0]


def _hours(hours: str) -> str:
    if "-" in hours:
        start, end = hours.split("-", 1)
        return f"open {start} to {end}"
    return hours


#: Words of a question about opening hours ("is it open tomorrow?", "when does it close?").
HOURS_WORDS = frozenset({"open", "opens", "opening", "close", "closes", "closing", "closed", "hours", "hour"})


def _minutes(hhmm: str) -> int:
    try:
        h, m = hhmm.strip().split(":")
        return int(h) * 60 + int(m)
    except ValueError:
        return -1


def _open_when(hours: str, period) -> str:
    """"tomorrow (Tuesday) it is open 10:00 to 21:00", "tonight it is open until 21:00",
    "it closes at 17:00, so it is not open tonight" (one set of hours for every day)."""
    if "-" not in hours:
        return f"{period.phrase} its hours are {hours}"
    start, end = (x.strip() for x in hours.split("-", 1))
    if period.phrase == "tonight":
        close, opening = _minutes(end), _minutes(start)
        if 0 <= close <= 18 * 60 and close > opening:
            return f"it closes at {end}, so it is not open tonight"
        return f"tonight it is open until {end}"
    phrase = period.phrase
    if len(period.days) == 1 and phrase in ("today", "tomorrow", "the day after tomorrow"):
        phrase += f" ({period.days[0].strftime('%A')})"
    every = " every day" if len(period.days) > 1 else ""
    return f"{phrase} it is open {start} to {end}{every}"


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


# ------------------------------------------------------------------------ store finders


@dataclass
class StoreAnswer:
    city: str
    type_say: str
    stores: list[StoreHit]
    source: str  # "" for the catalog, "on Yelp" for Yelp


class StoreFinder(ABC):
    def __init__(self, resources: FulfillmentResources, catalog: Catalog | None):
        self.resources = resources
        self.catalog = catalog

    @abstractmethod
    def find(self, location: str, store_type_text: str | None, sort: str | None) -> StoreAnswer | str:
        """Stores, or a sentence that answers instead (unknown city, unknown type)."""


store_finders: Registry[StoreFinder] = Registry("store search provider")
price_sources: Registry["PriceSource"] = Registry("price provider")


@store_finders.register("catalog")
class CatalogStoreFinder(StoreFinder):
    def find(self, location: str, store_type_text: str | None, sort: str | None) -> StoreAnswer | str:
        city = self.catalog.resolve_city(location)
        if city is None:
            return (f"Sorry, we don't have stores in {location.title()} yet. "
                    f"I can help in {', '.join(self.catalog.cities())}.")
        store_type = self.catalog.resolve_store_type(store_type_text)
        if store_type_text and store_type is None:
            return f"Sorry, I don't know any {store_type_text} places in {city}."
        stores = self.catalog.find_stores(city, store_type, sort)
        say = store_type.say if store_type else "store"
        return StoreAnswer(city, say, stores, "")


@store_finders.register("yelp")
class YelpStoreFinder(StoreFinder):
    """Yelp-Fusion-style business search. `sort_by`: distance (nearest), rating (best)."""

    APOLOGY = "Sorry, I can't reach the business directory right now. Please try again in a moment."

    def __init__(self, resources: FulfillmentResources, catalog: Catalog | None):
        super().__init__(resources, catalog)
        s = resources.settings
        self.base_url = s.dialog.yelp_url
        self.key = s.dialog.yelp_api_key.get_secret_value() if s.dialog.yelp_api_key else None
        self.timeout = s.dialog.fulfillment_timeout_s

    def find(self, location: str, store_type_text: str | None, sort: str | None) -> StoreAnswer | str:
        if not self.key:
            raise FulfillmentError("Sorry, the business directory is not set up yet.",
                                   "yelp: no API key; set CALLSENSE_YELP_API_KEY")
        store_type = self.catalog.resolve_store_type(store_type_text) if self.catalog else None
        term = store_type.say if store_type else (store_type_text or "store")
        params = {"location": location, "term": term, "limit": 3,
                  "sort_by": "rating" if sort and sort.startswith("rating") else "distance"}
        try:
            data = get_json(self.base_url, "/v3/businesses/search", params,
                            {"Authorization": f"Bearer {self.key}"}, timeout=self.timeout).data
        except HttpFailure as e:
            code = ((e.body or {}).get("error") or {}).get("code") if isinstance(e.body, dict) else None
            if code == "LOCATION_NOT_FOUND":
                return f"Sorry, I couldn't find {location.title()}."
            apology = ("Sorry, the business directory is taking too long to answer. Please try again in a moment."
                       if e.kind == "timeout" else self.APOLOGY)
            raise FulfillmentError(apology, f"yelp: {e}" + (f" ({code})" if code else "")) from None
        try:
            businesses = data["businesses"]
            stores = []
            for b in businesses:
                if b.get("is_closed"):
                    continue
                loc = b.get("location") or {}
                address = ", ".join(loc.get("display_address") or []) or loc.get("address1") or ""
                stores.append(StoreHit(b["name"], term, loc.get("city") or location.title(), address, "",
                                       float(b.get("rating") or 0), float(b.get("distance") or 0) / 1000,
                                       b.get("display_phone") or ""))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FulfillmentError(self.APOLOGY, f"yelp: unexpected response ({e!r})") from None
        city = stores[0].city if stores else location.title()
        return StoreAnswer(city, term, stores, " on Yelp")


# ------------------------------------------------------------------------- price sources


@dataclass
class PriceAnswer:
    item_text: str
    offers: list[OfferHit]
    where: str  # "in Los Angeles" / "on eBay"
    currency: str = "USD"


class PriceSource(ABC):
    def __init__(self, resources: FulfillmentResources, catalog: Catalog | None):
        self.resources = resources
        self.catalog = catalog

    @abstractmethod
    def prices(self, item_text: str, location: str, sort: str | None) -> PriceAnswer | str:
        ...


@price_sources.register("catalog")
class CatalogPrices(PriceSource):
    def prices(self, item_text: str, location: str, sort: str | None) -> PriceAnswer | str:
        city = self.catalog.resolve_city(location)
        if city is None:
            return (f"Sorry, we don't have stores in {location.title()} yet. "
                    f"I can help in {', '.join(self.catalog.cities())}.")
        names = self.catalog.match_items(item_text)
        if not names:
            return f"Sorry, I couldn't find {item_text} in our catalog."
        offers = self.catalog.find_offers(city, names, sort)
        if not offers:
            return f"Sorry, no store in {city} carries {item_text}."
        return PriceAnswer(item_text, offers, f"in {city}")


@price_sources.register("ebay")
class EbayPrices(PriceSource):
    """eBay-Browse-style item search: `sort=price` (lowest first) or `-price`."""

    APOLOGY = "Sorry, I can't reach the price service right now. Please try again in a moment."

    def __init__(self, resources: FulfillmentResources, catalog: Catalog | None):
        super().__init__(resources, catalog)
        s = resources.settings
        self.base_url = s.dialog.ebay_url
        self.token = s.dialog.ebay_token.get_secret_value() if s.dialog.ebay_token else None
        self.marketplace = s.dialog.ebay_marketplace
        self.timeout = s.dialog.fulfillment_timeout_s

    def prices(self, item_text: str, location: str, sort: str | None) -> PriceAnswer | str:
        if not self.token:
            raise FulfillmentError("Sorry, the price service is not set up yet.",
                                   "ebay: no token; set CALLSENSE_EBAY_TOKEN")
        params = {"q": item_text, "limit": 5, "filter": "buyingOptions:{FIXED_PRICE}"}
        if sort == "cost.high":
            params["sort"] = "-price"
        elif sort in ("cost.low", None, ""):
            params["sort"] = "price"
        headers = {"Authorization": f"Bearer {self.token}", "X-EBAY-C-MARKETPLACE-ID": self.marketplace}
        try:
            data = get_json(self.base_url, "/buy/browse/v1/item_summary/search", params, headers,
                            timeout=self.timeout).data
        except HttpFailure as e:
            detail = ""
            if isinstance(e.body, dict) and e.body.get("errors"):
                first = e.body["errors"][0]
                detail = f" ({first.get('errorId')}: {first.get('message')})"
            apology = ("Sorry, the price service is taking too long to answer. Please try again in a moment."
                       if e.kind == "timeout" else self.APOLOGY)
            raise FulfillmentError(apology, f"ebay: {e}{detail}") from None
        try:
            summaries = data.get("itemSummaries") or []
            offers = []
            currency = "USD"
            for s in summaries:
                price = s.get("price") or {}
                if "value" not in price:
                    continue
                currency = price.get("currency") or currency
                seller = (s.get("seller") or {}).get("username") or "an eBay seller"
                offers.append(OfferHit(s.get("title") or item_text, float(price["value"]), 1,
                                       StoreHit(seller, "ebay", "", "", "", 0.0, 0.0)))
        except (TypeError, ValueError, AttributeError) as e:
            raise FulfillmentError(self.APOLOGY, f"ebay: unexpected response ({e!r})") from None
        if not offers:
            return f"Sorry, I couldn't find {item_text} on eBay."
        if sort == "cost.high":
            offers.sort(key=lambda o: -o.price)
        else:
            offers.sort(key=lambda o: o.price)
        return PriceAnswer(item_text, offers, "on eBay", currency)


# ------------------------------------------------------------------------------ provider


@fulfillment_providers.register("Retail")
class RetailFulfillment(FulfillmentProvider):
    status_key = "retail_status"
    writes = frozenset({"retail_status", "retail_store", "retail_price"})

    def __init__(self, resources: FulfillmentResources):
        super().__init__(resources)
        s = resources.settings
        if resources.db is None:
            raise ValueError("the Retail provider needs the store's database (FulfillmentResources.db)")
        # The catalog is always there: stock comes from it whatever answers stores and prices.
        self.catalog = Catalog(resources.db)
        self.stores = store_finders.get(s.dialog.retail_store_provider)(resources, self.catalog)
        self.prices = price_sources.get(s.dialog.retail_price_provider)(resources, self.catalog)

    def fulfill(self, context: Mapping[str, Any]) -> dict[str, Any]:
        intent = labels.fulfillment_intent(str(context.get("intent") or "find_the_store"))
        location = str(context.get("location") or "").strip()
        item = str(context.get("item") or "").strip()
        store_type = str(context.get("store_type") or "").strip() or None
        sort = str(context.get("sort") or "").strip() or None
        if not location:
            return {self.status_key: "For which location?"}
        period = self._hours_period(context)
        if intent == "check_item_price":
            if not item:
                return {self.status_key: "Which item would you like the price of?"}
            return self._price(item, location, sort)
        if intent == "retail_inventory_check":
            if not item:
                return {self.status_key: "Which item should I check?"}
            return self._inventory(item, location)
        # find_the_store (and anything unknown): a store for the type or the item asked about.
        if store_type is None and item and self.catalog and self.catalog.resolve_store_type(item):
            store_type = item  # "where can I get the best pasta" -> Italian restaurants
        elif store_type is None and item:
            return self._where_to_buy(item, location, sort, period)
        return self._store(location, store_type, sort, period)

    def _hours_period(self, context: Mapping[str, Any]):
        """The day(s) a store question asks about: its `time` (or `store_day`) slot, or today
        when it asks about opening hours without a day; None for neither."""
        from callsense.dialog.fulfillment.weather import resolve_period

        when = str(context.get("time") or context.get("store_day") or "").strip()
        words = set(labels.tokenize(str(context.get("user_text") or "")))
        if not when and not (words & HOURS_WORDS or context.get("store_hours")):
            return None
        return resolve_period(when or "today", self.resources.today(), 7)

    def _store(self, location: str, store_type: str | None, sort: str | None, period=None) -> dict[str, Any]:
        found = self.stores.find(location, store_type, sort)
        if isinstance(found, str):
            return {self.status_key: found}
        if not found.stores:
            return {self.status_key: f"Sorry, I couldn't find {_a(found.type_say)} in {found.city}."}
        best = found.stores[0]
        adjective = SORT_WORDS.get(sort or "", "") or "nearest"
        details = []
        if best.hours and period is None:
            details.append(_hours(best.hours))
        if best.rating:
            details.append(f"rated {best.rating:g}{found.source}")
        tail = f" ({', '.join(details)})" if details else ""
        where = _street(best.address) if not found.source else best.address
        if period is not None and best.hours:
            text = (f"The {adjective} {found.type_say} in {found.city} is {best.name}, {where}: "
                    f"{_open_when(best.hours, period)}{tail}.")
        else:
            text = f"The {adjective} {found.type_say} in {found.city} is {best.name}, {where}{tail}."
        return {self.status_key: text, "retail_store": best.name}

    def _price(self, item: str, location: str, sort: str | None) -> dict[str, Any]:
        found = self.prices.prices(item, location, sort)
        if isinstance(found, str):
            return {self.status_key: found}
        first = found.offers[0]
        price = _money(first.price, found.currency)
        if found.where == "on eBay":
            adjective = "highest" if sort == "cost.high" else "lowest"
            text = f"The {adjective} price for {item} on eBay is {price}: {first.item}, from {first.store.name}."
            return {self.status_key: text, "retail_price": first.price}
        prices = sorted(o.price for o in found.offers)
        stores = len({o.store.name for o in found.offers})
        if sort == "cost.high":
            lead = f"The highest price for {item} {found.where} is {price}"
        elif sort == "rating.high":
            lead = f"At the highest-rated store {found.where}, {first.item} costs {price}"
        else:
            lead = f"The lowest price for {item} {found.where} is {price}"
        where = f"{first.store.name}, {_street(first.store.address)}"
        if sort == "rating.high":
            text = f"{lead}: {where} (rated {first.store.rating:g})."
        else:
            text = f"{lead}: {first.item} at {where}."
        if stores > 1:
            text += f" {stores} stores carry it, from {_money(prices[0])} to {_money(prices[-1])}."
        return {self.status_key: text, "retail_price": first.price, "retail_store": first.store.name}

    def _inventory(self, item: str, location: str) -> dict[str, Any]:
        if self.catalog is None:
            return {self.status_key: "Sorry, I can't check stock right now."}
        city = self.catalog.resolve_city(location)
        if city is None:
            return {self.status_key: f"Sorry, we don't have stores in {location.title()} yet. "
                                     f"I can help in {', '.join(self.catalog.cities())}."}
        names = self.catalog.match_items(item)
        if not names:
            return {self.status_key: f"Sorry, I couldn't find {item} in our catalog."}
        offers = self.catalog.find_offers(city, names, "distance", in_stock=True)
        if not offers:
            carried = self.catalog.find_offers(city, names, "distance")
            if not carried:
                return {self.status_key: f"Sorry, no store in {city} carries {item}."}
            return {self.status_key: f"Sorry, {item} is out of stock at every store in {city}."}
        first = offers[0]
        others = len({o.store.name for o in offers}) - 1
        more = f", and at {others} other store{'s' if others != 1 else ''} in {city}" if others else f" in {city}"
        text = (f"Yes, {first.item} is in stock at {first.store.name}, {_street(first.store.address)} "
                f"({first.stock} left){more}.")
        return {self.status_key: text, "retail_store": first.store.name}

    def _where_to_buy(self, item: str, location: str, sort: str | None, period=None) -> dict[str, Any]:
        """"Where can I buy jeans?": the nearest (or best-rated) store that has it in stock."""
        if self.catalog is None:
            return self._store(location, None, sort, period)
        city = self.catalog.resolve_city(location)
        names = self.catalog.match_items(item)
        if city is not None and not names:  # not the nearest store of any kind: say so
            return {self.status_key: f"Sorry, I couldn't find {item} in our catalog."}
        if city is None or not names:
            return self._store(location, None, sort, period)
        offers = self.catalog.find_offers(city, names, "rating.high" if sort == "rating.high" else "distance",
                                          in_stock=True)
        if not offers:
            return {self.status_key: f"Sorry, no store in {city} has {item} in stock."}
        first = offers[0]
        adjective = "highest-rated" if sort == "rating.high" else "nearest"
        hours = _open_when(first.store.hours, period) if period is not None else _hours(first.store.hours)
        text = (f"The {adjective} store in {city} with {item} in stock is {first.store.name}, "
                f"{_street(first.store.address)} ({hours}): {first.item} for {_money(first.price)}.")
        return {self.status_key: text, "retail_store": first.store.name}
