"""The embedded SQL catalog and the `Retail` provider on top of it."""

from __future__ import annotations

from sqlalchemy import func, select, update

from callsense.core.settings import Settings
from callsense.dialog.fulfillment.base import FulfillmentResources
from callsense.dialog.fulfillment.catalog import Catalog, load_catalog_data, seed_catalog
from callsense.dialog.fulfillment.retail import RetailFulfillment
from callsense.store.db import make_engine
from callsense.store.dialog_tables import CatalogItem, CatalogOffer, CatalogStore


def count(db, table) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_seeded_catalog_is_realistic_and_seeding_is_idempotent(dialog_db):
    catalog = Catalog(dialog_db)
    assert count(dialog_db, CatalogItem) >= 100
    assert count(dialog_db, CatalogStore) == sum(len(v) for v in load_catalog_data().stores.values())
    offers = count(dialog_db, CatalogOffer)
    assert offers > 800
    assert seed_catalog(dialog_db) == 0 and count(dialog_db, CatalogOffer) == offers
    assert set(catalog.cities()) == {"Los Angeles", "San Francisco", "Seattle", "New York", "Chicago", "Austin"}
    with dialog_db.connect() as conn:
        categories = set(conn.execute(select(CatalogItem.category).distinct()).scalars())
        hours = conn.execute(select(CatalogStore.hours)).scalars().all()
        zero_stock = conn.execute(select(func.count()).where(CatalogOffer.stock == 0)).scalar_one()
    assert categories == {"electronics", "clothing", "grocery", "home", "sports", "health"}
    assert all("-" in h for h in hours) and 0 < zero_stock < offers // 4


def test_prices_are_the_same_in_every_installation(tmp_path, dialog_db):
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        a, b = Catalog(dialog_db), Catalog(other)
        names = a.match_items("laptop memory")
        assert [(o.store.name, o.price, o.stock) for o in a.find_offers("Seattle", names)] == \
               [(o.store.name, o.price, o.stock) for o in b.find_offers("Seattle", names)]
    finally:
        other.dispose()


def test_nearest_best_rated_cheapest_dearest(dialog_db):
    catalog = Catalog(dialog_db)
    thai = catalog.resolve_store_type("thai food")
    nearest = catalog.find_stores("Los Angeles", thai)
    assert [s.name for s in nearest] == ["Silom Thai Express", "Jitlada Thai Kitchen"]
    assert nearest[0].distance_km < nearest[1].distance_km
    assert catalog.find_stores("Los Angeles", thai, "rating.high")[0].name == "Jitlada Thai Kitchen"
    jeans = catalog.match_items("jeans")
    assert len(jeans) == 3
    low = catalog.find_offers("Los Angeles", jeans, "cost.low")
    high = catalog.find_offers("Los Angeles", jeans, "cost.high")
    assert [o.price for o in low] == sorted(o.price for o in low)
    assert [o.price for o in high] == sorted((o.price for o in high), reverse=True)
    assert low[0].price < high[0].price
    assert catalog.resolve_city("downtown LA") is None and catalog.resolve_city("L.A.") == "Los Angeles"
    assert catalog.resolve_city("new york city") == "New York"
    assert catalog.match_items("a pair of levi's jeans") and catalog.match_items("zzz") == []


def provider(db) -> RetailFulfillment:
    return RetailFulfillment(FulfillmentResources(Settings(), db))


def test_provider_answers_every_retail_intent(dialog_db):
    retail = provider(dialog_db)
    say = lambda **ctx: retail.fulfill(ctx)["retail_status"]  # noqa: E731
    assert say(intent="find_the_store", location="seattle", store_type="sushi").startswith(
        "The nearest sushi restaurant in Seattle is Umi Sushi, 2230 1st Ave (open 16:00 to 22:00, rated 4.5).")
    assert say(intent="store_location", location="austin", store_type="bbq").startswith(
        "The nearest barbecue place in Austin is Eastside Barbecue")
    assert "highest-rated" in say(intent="find_the_store", location="new york", store_type="pizza", sort="rating.high")
    assert say(intent="check_item_price", location="chicago", item="dyson").startswith(
        "The lowest price for dyson in Chicago is $")
    assert say(intent="retail_inventory_check", location="austin", item="yoga mat").startswith(
        "Yes, Manduka Yoga Mat is in stock at Zilker Outdoor Sports")
    assert say(intent="find_the_store", location="seattle", store_type="ethiopian food") == \
        "Sorry, I don't know any ethiopian food places in Seattle."
    assert say(intent="check_item_price", location="paris", item="jeans").startswith(
        "Sorry, we don't have stores in Paris yet.")
    assert say(intent="check_item_price", location="seattle") == "Which item would you like the price of?"


def test_out_of_stock_everywhere(dialog_db):
    retail = provider(dialog_db)
    with dialog_db.begin() as conn:
        item_id = conn.execute(select(CatalogItem.id).where(CatalogItem.name == "Wilson Basketball")).scalar_one()
        conn.execute(update(CatalogOffer).where(CatalogOffer.item_id == item_id).values(stock=0))
    text = retail.fulfill({"intent": "retail_inventory_check", "location": "Chicago", "item": "basketball"})
    assert text["retail_status"] == "Sorry, basketball is out of stock at every store in Chicago."
