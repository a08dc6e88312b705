"""The Yelp-Fusion-style store search and the eBay-Browse-style price search, against a
real local HTTP server answering those services' documented response shapes."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

JITLADA = {
    "id": "ph3lWk0rbbbZuvsZn8aB2A", "alias": "jitlada-los-angeles", "name": "Jitlada",
    "image_url": "https://s3-media1.fl.yelpcdn.com/bphoto/x/o.jpg", "is_closed": False,
    "url": "https://www.yelp.com/biz/jitlada-los-angeles", "review_count": 2481,
    "categories": [{"alias": "thai", "title": "Thai"}], "rating": 4.5,
    "coordinates": {"latitude": 34.0982, "longitude": -118.304}, "transactions": ["delivery", "pickup"],
    "price": "$$",
    "location": {"address1": "5233 W Sunset Blvd", "address2": "", "address3": "", "city": "Los Angeles",
                 "zip_code": "90027", "country": "US", "state": "CA",
                 "display_address": ["5233 W Sunset Blvd", "Los Angeles, CA 90027"]},
    "phone": "+13236673663", "display_phone": "(323) 667-3663", "distance": 1523.4,
}
CLOSED = JITLADA | {"id": "closed1", "name": "Closed Thai Place", "is_closed": True, "distance": 300.0}
YELP_SEARCH = {"businesses": [CLOSED, JITLADA], "total": 240,
               "region": {"center": {"longitude": -118.2437, "latitude": 34.0522}}}
YELP_TOKEN_INVALID = {"error": {"code": "TOKEN_INVALID", "description": "Invalid access token or authorization header."}}
YELP_LOCATION = {"error": {"code": "LOCATION_NOT_FOUND",
                           "description": "Could not execute search, try specifying a more exact location."}}
YELP_RATE = {"error": {"code": "TOO_MANY_REQUESTS_PER_SECOND",
                       "description": "You have exceeded the queries-per-second limit for this endpoint."}}


def ebay_item(title: str, value: str, seller: str) -> dict:
    return {
        "itemId": f"v1|{abs(hash(title)) % 10**12}|0", "title": title, "leafCategoryIds": ["170083"],
        "categories": [{"categoryId": "170083", "categoryName": "Memory (RAM)"}],
        "image": {"imageUrl": "https://i.ebayimg.com/images/g/x/s-l225.jpg"},
        "price": {"value": value, "currency": "USD"}, "itemHref": "https://api.ebay.com/buy/browse/v1/item/v1|1|0",
        "seller": {"username": seller, "feedbackPercentage": "99.8", "feedbackScore": 15432},
        "condition": "New", "conditionId": "1000",
        "shippingOptions": [{"shippingCostType": "FIXED", "shippingCost": {"value": "0.00", "currency": "USD"}}],
        "buyingOptions": ["FIXED_PRICE"], "itemWebUrl": "https://www.ebay.com/itm/1",
        "itemLocation": {"postalCode": "917**", "country": "US"}, "adultOnly": False,
    }


EBAY_SEARCH = {
    "href": "https://api.ebay.com/buy/browse/v1/item_summary/search?q=laptop%20memory&limit=5&sort=price&offset=0",
    "total": 1520, "limit": 5, "offset": 0,
    "itemSummaries": [ebay_item("Crucial 16GB DDR4 3200 SODIMM Laptop Memory", "32.99", "memorydeals"),
                      ebay_item("Kingston FURY 16GB DDR4 Laptop RAM", "36.50", "pcparts_outlet")],
}
EBAY_EMPTY = {"href": "https://api.ebay.com/buy/browse/v1/item_summary/search?q=zzz&limit=5&offset=0",
              "total": 0, "limit": 5, "offset": 0}
EBAY_BAD_TOKEN = {"errors": [{"errorId": 1001, "domain": "OAuth", "category": "REQUEST",
                              "message": "Invalid access token",
                              "longMessage": "Invalid access token. Check the value of the Authorization HTTP request header."}]}

YELP_PATH = "/v3/businesses/search"
EBAY_PATH = "/buy/browse/v1/item_summary/search"


#: A delay no reply waits for: the fake server holds the request until the test ends.
HELD_S = 600.0

@pytest.fixture
def online_retail(make_assistant, fake_api):
    def build(**overrides):
        settings = dict(retail_store_provider="yelp", retail_price_provider="ebay", yelp_url=fake_api.url,
                        ebay_url=fake_api.url, yelp_api_key=SecretStr("yelp-key"), ebay_token=SecretStr("ebay-token"),
                        fulfillment_timeout_s=30.0)  # a local server that answers: no deadline is met or missed by chance
        settings.update(overrides)
        return make_assistant(**settings)

    return build


def test_yelp_nearest_and_best_rated(online_retail, fake_api):
    fake_api.answer(YELP_PATH, 200, YELP_SEARCH)
    assistant = online_retail()
    reply = assistant.reply("s", "nearest Thai food in Los Angeles")
    assert reply.messages[-1].text == ("The nearest Thai restaurant in Los Angeles is Jitlada, 5233 W Sunset Blvd, "
                          "Los Angeles, CA 90027 (rated 4.5 on Yelp).")
    path, query, headers = fake_api.requests[-1]
    assert path == YELP_PATH and headers["Authorization"] == "Bearer yelp-key"
    assert query == {"location": "los angeles", "term": "Thai restaurant", "limit": "3", "sort_by": "distance"}
    assistant.reply("s", "the highest-rated sushi restaurant")
    assert fake_api.requests[-1][1]["sort_by"] == "rating"


def test_ebay_lowest_and_highest_price(online_retail, fake_api):
    fake_api.answer(EBAY_PATH, 200, EBAY_SEARCH)
    assistant = online_retail()
    reply = assistant.reply("s", "how much is laptop memory in Los Angeles")
    assert reply.messages[-1].text == ("The lowest price for laptop memory on eBay is $32.99: "
                          "Crucial 16GB DDR4 3200 SODIMM Laptop Memory, from memorydeals.")
    path, query, headers = fake_api.requests[-1]
    assert headers["Authorization"] == "Bearer ebay-token" and headers["X-Ebay-C-Marketplace-Id"] == "EBAY_US"
    assert query["q"] == "laptop memory" and query["sort"] == "price"
    reply = assistant.reply("s", "what are the most expensive airpods")
    assert fake_api.requests[-1][1]["sort"] == "-price"
    assert reply.text.startswith("The highest price for airpods on eBay is $36.50")
    fake_api.answer(EBAY_PATH, 200, EBAY_EMPTY)
    assert assistant.reply("s", "how much is a zzz gadget").text == "Sorry, I couldn't find zzz gadget on eBay."


@pytest.mark.parametrize("path,status,body,apology", [
    (YELP_PATH, 401, YELP_TOKEN_INVALID, "Sorry, I can't reach the business directory right now."),
    (YELP_PATH, 429, YELP_RATE, "Sorry, I can't reach the business directory right now."),
    (YELP_PATH, 503, {"error": {"code": "SERVICE_UNAVAILABLE"}}, "Sorry, I can't reach the business directory"),
    (EBAY_PATH, 401, EBAY_BAD_TOKEN, "Sorry, I can't reach the price service right now."),
    (EBAY_PATH, 500, {"errors": [{"errorId": 12000, "message": "There was a problem with an eBay internal system"}]},
     "Sorry, I can't reach the price service right now."),
], ids=["yelp-401", "yelp-429", "yelp-503", "ebay-401", "ebay-500"])
def test_service_errors_route_to_an_apology(online_retail, fake_api, path, status, body, apology):
    fake_api.answer(path, status, body)
    question = "nearest Thai food in Los Angeles" if path == YELP_PATH else "how much is laptop memory in Seattle"
    reply = online_retail().reply("s", question)
    assert apology in reply.text and "retail_failed" in reply.visited and reply.state == "input_intent"
    assert f"HTTP {status}" in reply.context["fulfillment_error"]
    code = body.get("error", {}).get("code") if "error" in body else body["errors"][0].get("errorId")
    assert str(code) in reply.context["fulfillment_error"]


def test_timeouts_route_to_an_apology(online_retail, fake_api):
    # Servers that hold every request until the test ends: only giving up on them answers.
    fake_api.answer(YELP_PATH, 200, YELP_SEARCH, delay_s=HELD_S)
    fake_api.answer(EBAY_PATH, 200, EBAY_SEARCH, delay_s=HELD_S)
    assistant = online_retail(fulfillment_timeout_s=0.3)
    for path, question, apology in ((YELP_PATH, "nearest Thai food in Los Angeles", "business directory is taking too long"),
                                    (EBAY_PATH, "how much is laptop memory in Seattle", "price service is taking too long")):
        reply = assistant.reply("s", question)
        assert apology in reply.text and "did not answer within 0.3 s" in reply.context["fulfillment_error"]
        assert "retail_failed" in reply.visited and reply.state == "input_intent"
        # The one request was abandoned (the server has not answered it yet), not retried.
        assert fake_api.requests_to(path) == 1


def test_unknown_location_on_yelp_is_an_answer_not_a_failure(online_retail, fake_api):
    fake_api.answer(YELP_PATH, 400, YELP_LOCATION)
    reply = online_retail().reply("s", "nearest pizza place in Timbuktu")
    assert reply.messages[-1].text == "Sorry, I couldn't find Timbuktu." and "retail_failed" not in reply.visited


def test_missing_keys_say_what_to_set(online_retail, fake_api):
    assistant = online_retail(yelp_api_key=None, ebay_token=None)
    reply = assistant.reply("s", "nearest Thai food in Los Angeles")
    assert "not set up yet" in reply.text and "CALLSENSE_YELP_API_KEY" in reply.context["fulfillment_error"]
    reply = assistant.reply("s", "how much is laptop memory")
    assert "CALLSENSE_EBAY_TOKEN" in reply.context["fulfillment_error"]
    assert fake_api.requests == []


def test_stock_still_comes_from_the_catalog(online_retail, fake_api):
    reply = online_retail().reply("s", "do you have airpods in stock in Seattle")
    assert reply.messages[-1].text.startswith("Yes, Apple AirPods Pro is in stock at") and fake_api.requests == []
