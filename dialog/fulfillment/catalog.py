"""The embedded retail catalog: seeded into the store's database, queried with SQL.

`CatalogData` is the sample data file (`data/catalog.yml`): cities, stores and restaurants
with addresses, hours and ratings, ~100 items. `seed_catalog` writes it into the
`catalog_*` tables once (prices and stock per store derived by a fixed hash, so every
installation has the same catalog). `Catalog` answers the retail questions with SQL:
stores of a type in a city (nearest first, or best rated), offers of an item in a city
(cheapest first, or dearest, or at the best-rated store), stock per store.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.engine import Engine

from callsense.dialog.nlu import labels
from callsense.store.dialog_tables import CatalogItem, CatalogOffer, CatalogStore

CATALOG_FILE = Path(__file__).parent / "data" / "catalog.yml"
_FILLER = {"the", "a", "an", "some", "good", "nice", "great", "best", "nearest", "closest", "near", "me", "place",
           "places", "spot", "local", "any"}


@dataclass(frozen=True)
class StoreType:
    key: str  # electronics, thai, ...
    say: str  # "Thai restaurant"
    kind: str  # store | restaurant
    any: bool  # the generic "store" / "restaurant": every category of that kind


@dataclass
class CatalogData:
    cities: dict[str, dict]
    city_aliases: dict[str, str]  # normalised phrase -> city name
    store_types: dict[str, StoreType]
    store_type_phrases: dict[str, str]  # normalised phrase -> store type key
    carries: dict[str, list[str]]
    stores: dict[str, list[list]]
    items: list[list]

    def item_phrases(self) -> dict[str, list[str]]:
        """Normalised phrase -> item names it may mean ("jeans" -> three kinds of jeans)."""
        out: dict[str, list[str]] = {}
        for name, _category, _brand, _price, aliases in self.items:
            for phrase in [name, *aliases]:
                out.setdefault(phrase_key(phrase), []).append(name)
        return out

    def brand_phrases(self) -> dict[str, list[str]]:
        """Normalised brand -> the items of that brand ("nike" -> Nike Pegasus Running Shoes).
        Kept apart from `item_phrases`: a brand is a weaker match than an item's own words."""
        out: dict[str, list[str]] = {}
        for name, _category, brand, _price, _aliases in self.items:
            for phrase in {phrase_key(brand), phrase_key(str(brand).replace("'", ""))}:
                if phrase:
                    out.setdefault(phrase, []).append(name)
        return out


class ItemVocabulary:
    """The catalog's words for items (aliases, names, brands): which items a customer's
    phrase may mean. Needs no database (the dialog layer checks item slots with it)."""

    def __init__(self, data: CatalogData | None = None):
        data = data or load_catalog_data()
        self._phrases = data.item_phrases()
        self._brands = data.brand_phrases()

    def knows(self, text: str) -> bool:
        return bool(self.match(text))

    def exact(self, text: str) -> bool:
        """Is the phrase itself (or its singular) an item's name, alias or brand + alias?"""
        key = phrase_key(text)
        if not key:
            return False
        singular = " ".join(w[:-1] if w.endswith("s") and len(w) > 3 else w for w in key.split())
        if key in self._phrases or singular in self._phrases:
            return True
        words = key.split()
        return len(words) > 1 and words[0] in self._brands and (" ".join(words[1:]) in self._phrases
                                                               or " ".join(singular.split()[1:]) in self._phrases)

    def match(self, text: str) -> list[str]:
        """Item names a customer's phrase may mean, best first ([] when none): the phrase
        itself, its singular, the longest known phrase inside it, else a brand in it."""
        key = phrase_key(text)
        if not key:
            return []
        if key in self._phrases:
            return list(dict.fromkeys(self._phrases[key]))
        singular = " ".join(w[:-1] if w.endswith("s") and len(w) > 3 else w for w in key.split())
        if singular in self._phrases:
            return list(dict.fromkeys(self._phrases[singular]))
        words = key.split()
        for n in range(len(words), 0, -1):  # the longest known phrase inside the text
            found: list[str] = []
            for i in range(len(words) - n + 1):
                phrase = " ".join(words[i:i + n])
                found += self._phrases.get(phrase, [])
                if not found and n == 1 and phrase.endswith("s") and len(phrase) > 3:
                    found += self._phrases.get(phrase[:-1], [])
            if found:
                brands = [name for w in words for name in self._brands.get(w, [])]
                preferred = [name for name in found if name in brands]  # "nike running shoes"
                return list(dict.fromkeys(preferred + found))
        for n in range(min(len(words), 3), 0, -1):  # "nike", "the north face"
            for i in range(len(words) - n + 1):
                names = self._brands.get(" ".join(words[i:i + n]))
                if names:
                    return list(dict.fromkeys(names))
        return []


@lru_cache(maxsize=4)
def item_vocabulary(path: str = str(CATALOG_FILE)) -> ItemVocabulary:
    return ItemVocabulary(load_catalog_data(path))


def phrase_key(text: str) -> str:
    return " ".join(labels.tokenize(str(text).replace(".", "")))


@lru_cache(maxsize=4)
def load_catalog_data(path: str = str(CATALOG_FILE)) -> CatalogData:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    city_aliases: dict[str, str] = {}
    for name, city in raw["cities"].items():
        for phrase in [name, *city.get("aliases", [])]:
            city_aliases[phrase_key(phrase)] = name
    store_types: dict[str, StoreType] = {}
    phrases: dict[str, str] = {}
    for key, spec in raw["store_types"].items():
        store_types[key] = StoreType(key, spec["say"], spec["kind"], bool(spec.get("any", False)))
        for phrase in spec["phrases"]:
            phrases[phrase_key(phrase)] = key
    return CatalogData(raw["cities"], city_aliases, store_types, phrases, raw["carries"], raw["stores"], raw["items"])


def _hash(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")


def _price(base: float, h: int) -> float:
    factor = 0.88 + (h % 29) / 100  # 0.88 .. 1.16
    price = base * factor
    if price >= 10:
        return math.floor(price) + 0.99
    return round(price, 2)


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def seed_catalog(db: Engine, data: CatalogData | None = None, *, replace: bool = False) -> int:
    """Write the sample catalog into the database unless it already has stores (or `replace`).
    Returns the number of stores written (0 when the catalog was already there)."""
    data = data or load_catalog_data()
    with db.begin() as conn:
        if not replace and conn.execute(select(func.count()).select_from(CatalogStore)).scalar_one() > 0:
            return 0
        for table in (CatalogOffer, CatalogItem, CatalogStore):
            conn.execute(delete(table))
        item_rows = [dict(name=name, category=category, brand=brand, aliases="|".join(aliases))
                     for name, category, brand, _price, aliases in data.items]
        conn.execute(insert(CatalogItem), item_rows)
        items = {row.name: (row.id, row.category) for row in conn.execute(select(CatalogItem.id, CatalogItem.name,
                                                                                 CatalogItem.category))}
        base_price = {name: float(price) for name, _c, _b, price, _a in data.items}
        store_rows = []
        for city, rows in data.stores.items():
            centre = data.cities[city]
            for name, category, address, hours, rating, lat, lon, phone in rows:
                kind = data.store_types[category].kind if category in data.store_types else "store"
                store_rows.append(dict(name=name, kind=kind, category=category, city=city, address=address,
                                       hours=hours, rating=float(rating), phone=phone, lat=float(lat), lon=float(lon),
                                       distance_km=round(_distance_km(centre["lat"], centre["lon"], lat, lon), 2)))
        conn.execute(insert(CatalogStore), store_rows)
        offers = []
        for store in conn.execute(select(CatalogStore.id, CatalogStore.name, CatalogStore.category)):
            carried = set(data.carries.get(store.category, []))
            for item_name, (item_id, item_category) in items.items():
                if item_category not in carried:
                    continue
                h = _hash(store.name, item_name)
                if h % 10 == 0:  # about one item in ten is not carried by a given store
                    continue
                stock = (h >> 16) % 41
                if (h >> 24) % 7 == 0:
                    stock = 0
                offers.append(dict(store_id=store.id, item_id=item_id, price=_price(base_price[item_name], h >> 8),
                                   stock=stock))
        conn.execute(insert(CatalogOffer), offers)
        return len(store_rows)


@dataclass
class StoreHit:
    name: str
    category: str
    city: str
    address: str
    hours: str
    rating: float
    distance_km: float
    phone: str = ""


@dataclass
class OfferHit:
    item: str
    price: float
    stock: int
    store: StoreHit


class Catalog:
    """SQL queries over the seeded catalog."""

    def __init__(self, db: Engine, data: CatalogData | None = None):
        self.db = db
        self.data = data or load_catalog_data()
        seed_catalog(db, self.data)
        self._item_ids: dict[str, int] = {}
        with db.connect() as conn:
            for row in conn.execute(select(CatalogItem.id, CatalogItem.name)):
                self._item_ids[row.name] = row.id
        self._items = ItemVocabulary(self.data)
        self._statements: dict = {}

    # ---- understanding the customer's words ----------------------------------------

    def resolve_city(self, text: str) -> str | None:
        key = phrase_key(str(text).split(",")[0])
        if key in self.data.city_aliases:
            return self.data.city_aliases[key]
        for phrase, city in self.data.city_aliases.items():  # "downtown los angeles"
            if re.search(rf"\b{re.escape(phrase)}\b", key) and len(phrase) > 3:
                return city
        return None

    def resolve_store_type(self, text: str | None) -> StoreType | None:
        if not text:
            return None
        key = phrase_key(text)
        for candidate in (key, re.sub(r"\b(the|a|an|some|good|best|nearest|closest)\b", "", key).strip()):
            candidate = " ".join(candidate.split())
            if candidate in self.data.store_type_phrases:
                return self.data.store_types[self.data.store_type_phrases[candidate]]
        words = [w for w in key.split() if w not in _FILLER]
        for n in range(len(words), 0, -1):  # the longest known phrase inside the text
            for i in range(len(words) - n + 1):
                phrase = " ".join(words[i:i + n])
                if phrase in self.data.store_type_phrases:
                    found = self.data.store_types[self.data.store_type_phrases[phrase]]
                    # "ethiopian food": a generic word with a qualifier we don't know is no match
                    if found.any and len(words) > n:
                        return None
                    return found
        return None

    def match_items(self, text: str) -> list[str]:
        """Item names a customer's phrase may mean, best first ([] when none). A hyphenated
        compound the catalog writes apart ("coffee-maker", as recognizers write it) is tried
        both ways."""
        found = self._items.match(text)
        if not found and "-" in text:
            found = self._items.match(text.replace("-", " "))
        return found

    # ---- SQL ---------------------------------------------------------------------

    @staticmethod
    def _store(row) -> StoreHit:
        return StoreHit(row.name, row.category, row.city, row.address, row.hours, row.rating, row.distance_km, row.phone)

    def find_stores(self, city: str, store_type: StoreType | None, sort: str | None = None,
                    limit: int = 3) -> list[StoreHit]:
        if store_type is None:
            by, value = "kind", "store"
        elif store_type.any:
            by, value = "kind", store_type.kind
        else:
            by, value = "category", store_type.key
        order = sort if sort in ("rating.high", "rating.low") else "distance"
        stmt = self._statement(("stores", by, order, limit), lambda: self._stores_stmt(by, order, limit))
        with self.db.connect() as conn:
            return [self._store(r) for r in conn.execute(stmt, {"city": city, "value": value})]

    def find_offers(self, city: str, item_names: list[str], sort: str | None = None, *,
                    in_stock: bool = False, limit: int = 50) -> list[OfferHit]:
        ids = [self._item_ids[n] for n in item_names if n in self._item_ids]
        if not ids:
            return []
        order = sort if sort in ("cost.high", "rating.high") else \
            "cost.low" if sort in ("cost.low", "cost.average", None, "") else "distance"
        stmt = self._statement(("offers", order, in_stock, limit), lambda: self._offers_stmt(order, in_stock, limit))
        with self.db.connect() as conn:
            return [OfferHit(r.item, r.price, r.stock, self._store(r))
                    for r in conn.execute(stmt, {"city": city, "ids": ids})]

    # Statements are built once per shape and run with parameters (SQLAlchemy's compiled
    # cache then makes a query cost little more than SQLite's own work).

    def _statement(self, key, build):
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = build()
        return stmt

    @staticmethod
    def _stores_stmt(by: str, order: str, limit: int):
        s = CatalogStore.__table__.c
        q = select(CatalogStore.__table__).where(s.city == bindparam("city"), s[by] == bindparam("value"))
        if order == "rating.high":
            q = q.order_by(s.rating.desc(), s.distance_km)
        elif order == "rating.low":
            q = q.order_by(s.rating, s.distance_km)
        else:
            q = q.order_by(s.distance_km)
        return q.limit(limit)

    @staticmethod
    def _offers_stmt(order: str, in_stock: bool, limit: int):
        i, o, s = CatalogItem.__table__.c, CatalogOffer.__table__.c, CatalogStore.__table__.c
        q = (select(i.name.label("item"), o.price, o.stock, s.name, s.category, s.city, s.address, s.hours,
                    s.rating, s.distance_km, s.phone)
             .select_from(CatalogItem.__table__.join(CatalogOffer.__table__, o.item_id == i.id)
                          .join(CatalogStore.__table__, s.id == o.store_id))
             .where(s.city == bindparam("city"), i.id.in_(bindparam("ids", expanding=True))))
        if in_stock:
            q = q.where(o.stock > 0)
        if order == "cost.high":
            q = q.order_by(o.price.desc(), s.distance_km)
        elif order == "rating.high":
            q = q.order_by(s.rating.desc(), o.price)
        elif order == "cost.low":
            q = q.order_by(o.price, s.distance_km)
        else:
            q = q.order_by(s.distance_km, o.price)
        return q.limit(limit)

    def cities(self) -> list[str]:
        return list(self.data.cities)
