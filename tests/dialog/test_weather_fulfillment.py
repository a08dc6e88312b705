"""The `Weather` provider: the offline table, time periods, and the WeatherStack-style
adapter against a real local HTTP server (documented response shapes, errors, timeouts)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import SecretStr

from callsense.dialog.fulfillment.weather import resolve_period

TEST_DAY = date(2025, 6, 2)  # as in conftest: day 0 of the forecasts, a Monday

CURRENT_LA = {
    "request": {"type": "City", "query": "Los Angeles, United States of America", "language": "en", "unit": "m"},
    "location": {"name": "Los Angeles", "country": "United States of America", "region": "California",
                 "lat": "34.052", "lon": "-118.244", "timezone_id": "America/Los_Angeles",
                 "localtime": "2025-06-02 09:14", "localtime_epoch": 1748855640, "utc_offset": "-7.0"},
    "current": {"observation_time": "04:14 PM", "temperature": 21, "weather_code": 113,
                "weather_icons": ["https://assets.weatherstack.com/images/wsymbols01_png_64/wsymbol_0001_sunny.png"],
                "weather_descriptions": ["Sunny"], "wind_speed": 9, "wind_degree": 250, "wind_dir": "WSW",
                "pressure": 1014, "precip": 0, "humidity": 60, "cloudcover": 0, "feelslike": 21, "uv_index": 6,
                "visibility": 16, "is_day": "yes"},
}


def forecast_day(day: date, desc: str, low: int, high: int, rain: int, precip: float, snow: float = 0) -> dict:
    return {
        "date": day.isoformat(), "date_epoch": 0,
        "astro": {"sunrise": "05:41 AM", "sunset": "08:01 PM", "moonrise": "No moonrise", "moonset": "12:50 PM",
                  "moon_phase": "Waxing Crescent", "moon_illumination": 40},
        "mintemp": low, "maxtemp": high, "avgtemp": (low + high) // 2, "totalsnow": snow, "sunhour": 8.7,
        "uv_index": 4,
        "hourly": [{"time": "0", "temperature": (low + high) // 2, "wind_speed": 13, "wind_degree": 200,
                    "wind_dir": "SSW", "weather_code": 296, "weather_icons": [], "weather_descriptions": [desc],
                    "precip": precip, "humidity": 84, "visibility": 9, "pressure": 1012, "cloudcover": 90,
                    "heatindex": 14, "dewpoint": 10, "windchill": 12, "windgust": 20, "feelslike": 12,
                    "chanceofrain": rain, "chanceofremdry": 10, "chanceofwindy": 0, "chanceofovercast": 80,
                    "chanceofsunshine": 5, "chanceoffrost": 0, "chanceofhightemp": 0, "chanceoffog": 0,
                    "chanceofsnow": 0, "chanceofthunder": 0, "uv_index": 1}],
    }


FORECAST_SEATTLE = {
    "request": CURRENT_LA["request"] | {"query": "Seattle, United States of America"},
    "location": CURRENT_LA["location"] | {"name": "Seattle", "region": "Washington"},
    "current": CURRENT_LA["current"],
    "forecast": {
        TEST_DAY.isoformat(): forecast_day(TEST_DAY, "Cloudy", 9, 15, 20, 0.0),
        (TEST_DAY + timedelta(days=1)).isoformat(): forecast_day(TEST_DAY + timedelta(days=1), "Moderate rain",
                                                                 8, 13, 85, 9.5),
    },
}
INVALID_KEY = {"success": False, "error": {"code": 101, "type": "invalid_access_key",
                                           "info": "You have not supplied a valid API Access Key. "
                                                   "[Technical Support: support@apilayer.com]"}}


def test_periods():
    monday = date(2025, 6, 2)
    assert resolve_period(None, monday, 7).days == [monday]
    assert resolve_period("tomorrow", monday, 7).phrase == "tomorrow"
    assert resolve_period("this weekend", monday, 7).days == [date(2025, 6, 7), date(2025, 6, 8)]
    assert resolve_period("next week", monday, 7).days == [monday + timedelta(days=i) for i in range(7)]
    assert resolve_period("on Friday", monday, 7).days == [date(2025, 6, 6)]
    sunday = date(2025, 6, 8)
    assert resolve_period("this weekend", sunday, 7).days == [sunday]
    assert resolve_period("next weekend", sunday, 7).days == [date(2025, 6, 14), date(2025, 6, 15)]


@pytest.fixture
def weatherstack(make_assistant, fake_api):
    def build(**overrides):
        settings = dict(weather_provider="weatherstack", weatherstack_url=fake_api.url,
                        weatherstack_api_key=SecretStr("test-key"), fulfillment_timeout_s=30.0)  # local: never missed by chance
        settings.update(overrides)
        return make_assistant(**settings)

    return build


def test_current_weather_from_weatherstack(weatherstack, fake_api):
    fake_api.answer("/current", 200, CURRENT_LA)
    reply = weatherstack().reply("s", "what's the weather in Los Angeles?")
    assert reply.text.endswith("In Los Angeles today: sunny, a high of 70°F and a low of 70°F.")
    path, query, _ = fake_api.requests[-1]
    assert path == "/current" and query["access_key"] == "test-key" and query["query"] == "los angeles"
    assert query["units"] == "m"


def test_forecast_from_weatherstack(weatherstack, fake_api):
    fake_api.answer("/forecast", 200, FORECAST_SEATTLE)
    reply = weatherstack().reply("s", "will it rain tomorrow in Seattle?")
    assert reply.text.endswith("Yes, rain is likely in Seattle tomorrow: a 85% chance, about 0.4 inches.")
    _, query, _ = fake_api.requests[-1]
    assert query["forecast_days"] == "2" and query["hourly"] == "1"


@pytest.mark.parametrize("route,apology", [
    (dict(status=200, body=INVALID_KEY), "Sorry, I can't reach the weather service right now."),
    (dict(status=500, body={"message": "Internal Server Error"}), "Sorry, I can't reach the weather service right now."),
    (dict(status=200, raw=b"<html>maintenance</html>"), "Sorry, I can't reach the weather service right now."),
    # held until the test ends: only giving up on the request answers the turn
    (dict(status=200, body=CURRENT_LA, delay_s=600.0), "Sorry, the weather service is taking too long to answer."),
], ids=["error-body", "http-500", "not-json", "timeout"])
def test_failures_route_the_conversation_to_an_apology(weatherstack, fake_api, route, apology):
    fake_api.answer("/current", **route)
    times_out = route.get("delay_s", 0) > 0
    # 2 s: long enough for the answered request that follows, on a busy machine
    assistant = weatherstack(fulfillment_timeout_s=2.0) if times_out else weatherstack()
    reply = assistant.reply("s", "what's the weather in Los Angeles?")
    assert apology in reply.text
    if times_out:  # the one request was abandoned unanswered, not retried
        assert "did not answer within 2 s" in reply.context["fulfillment_error"]
        assert fake_api.requests_to("/current") == 1
    assert "weather_failed" in reply.visited and "error_offer_help" in reply.visited
    assert reply.state == "input_intent" and reply.context["fulfillment_error"].startswith("weatherstack")
    assert reply.error.startswith("Weather: weatherstack /current")
    # the conversation goes on: the next question is answered once the service is back
    fake_api.answer("/current", 200, CURRENT_LA)
    assert "In Los Angeles today" in assistant.reply("s", "and now?  what's the weather in LA").text


def test_missing_key_is_a_clear_apology(weatherstack, fake_api):
    reply = weatherstack(weatherstack_api_key=None).reply("s", "what's the weather in Los Angeles?")
    assert "the weather service is not set up yet" in reply.text
    assert "CALLSENSE_WEATHERSTACK_API_KEY" in reply.context["fulfillment_error"]
    assert fake_api.requests == []


def test_a_server_that_is_not_there(weatherstack, pick_ports):
    (port,) = pick_ports(1)
    reply = weatherstack(weatherstack_url=f"http://127.0.0.1:{port}").reply("s", "weather in Seattle")
    assert "Sorry, I can't reach the weather service right now." in reply.text
    assert "cannot reach 127.0.0.1" in reply.context["fulfillment_error"]


def test_apology_without_an_error_transition_goes_on_to_next_state(write_flows, make_assistant, fake_api):
    folder = write_flows(main="""
        name: M
        intent_transitions: {weather.weather: w, nomatch.none: input_intent}
        states:
          input_intent: {type: input_context}
          w:
            type: Weather
            transitions: {next_state: say}
          say:
            type: message_text
            properties: {text: "{{weather_status}}"}
            transitions: {next_state: input_intent}
    """)
    fake_api.answer("/current", 401, {"success": False})
    assistant = make_assistant(flows=folder, weather_provider="weatherstack", weatherstack_url=fake_api.url,
                               weatherstack_api_key=SecretStr("k"))
    reply = assistant.reply("s", "weather in Austin")
    assert reply.text == "Sorry, I can't reach the weather service right now. Please try again in a moment."
    assert reply.visited[-2:] == ["say", "input_intent"]
