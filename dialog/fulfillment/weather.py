"""The `Weather` fulfillment: forecasts from an offline table or a WeatherStack-style API,
answered in words for each weather intent (WP-7328's `weather`, `temperature`, `rainfall`, ...).

Sources (setting `weather_provider`):
- `offline`: `data/forecasts.yml`, a week per city (no network, no key; the default).
- `weatherstack`: `GET /current` (today) and `GET /forecast` (later days) of a
  WeatherStack-style API with `access_key` from CALLSENSE_WEATHERSTACK_API_KEY.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from callsense.dialog.fulfillment.base import FulfillmentError, FulfillmentProvider, FulfillmentResources, fulfillment_providers
from callsense.dialog.fulfillment.http import HttpFailure, get_json
from callsense.dialog.nlu import labels
from callsense.core.registry import Registry

FORECASTS_FILE = Path(__file__).parent / "data" / "forecasts.yml"
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


@dataclass
class DayForecast:
    day: date
    condition: str
    high_c: float
    low_c: float
    precip_chance: int  # %
    precip_mm: float
    snow_cm: float
    humidity: int  # %
    cloudcover: int  # %

    @property
    def rainy(self) -> bool:
        wet = self.precip_chance >= 50 or self.precip_mm >= 2.0
        only_snow = self.snow_cm > 0 and "rain" not in self.condition.lower()
        return wet and not only_snow

    @property
    def snowy(self) -> bool:
        return self.snow_cm > 0 or "snow" in self.condition.lower()

    @property
    def sunny(self) -> bool:
        c = self.condition.lower()
        return ("sun" in c or "clear" in c) and self.precip_chance < 50 or (self.cloudcover <= 25 and self.precip_chance < 30)

    @property
    def cloudy(self) -> bool:
        c = self.condition.lower()
        return self.cloudcover >= 60 or any(w in c for w in ("cloud", "overcast", "fog"))


@dataclass
class WeatherReport:
    location: str  # display name ("Los Angeles")
    days: list[DayForecast]


class LocationNotFound(Exception):
    """Not a failure: the source has no forecast for this place (said as an answer)."""

    def __init__(self, location: str, known: list[str] | None = None):
        super().__init__(location)
        self.location = location
        self.known = known or []


class WeatherSource(ABC):
    horizon_days: int = 7

    def __init__(self, resources: FulfillmentResources):
        self.resources = resources

    @abstractmethod
    def report(self, location: str, days: list[date]) -> WeatherReport:
        """Forecasts of `location` for `days` (those the source has)."""


weather_sources: Registry[WeatherSource] = Registry("weather provider")


# ------------------------------------------------------------------------------ offline


@lru_cache(maxsize=4)
def _forecast_table(path: str) -> dict[str, tuple[str, list[list]]]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    table: dict[str, tuple[str, list[list]]] = {}
    for name, city in data["cities"].items():
        for alias in [name, *city.get("aliases", [])]:
            table[_place_key(str(alias))] = (name, city["days"])
    return table


def _place_key(text: str) -> str:
    text = labels.normalize(text).split(",")[0]
    return " ".join(re.findall(r"[a-z0-9.]+", text)).replace(".", "")


@weather_sources.register("offline")
class OfflineForecasts(WeatherSource):
    """A table of forecasts: day 0 of each city is today."""

    def __init__(self, resources: FulfillmentResources, path: Path = FORECASTS_FILE):
        super().__init__(resources)
        self.table = _forecast_table(str(path))
        self.horizon_days = min(len(days) for _, days in self.table.values())

    def cities(self) -> list[str]:
        return sorted({name for name, _ in self.table.values()})

    def report(self, location: str, days: list[date]) -> WeatherReport:
        found = self.table.get(_place_key(location))
        if found is None:
            raise LocationNotFound(location, self.cities())
        name, rows = found
        today = self.resources.today()
        out = []
        for d in days:
            offset = (d - today).days
            if 0 <= offset < len(rows):
                cond, high, low, chance, mm, snow, humidity, cloud = rows[offset]
                out.append(DayForecast(d, str(cond), float(high), float(low), int(chance), float(mm), float(snow),
                                       int(humidity), int(cloud)))
        return WeatherReport(name, out)


# -------------------------------------------------------------------------- WeatherStack


@weather_sources.register("weatherstack")
class WeatherStackForecasts(WeatherSource):
    """WeatherStack-style API: `/current` for today, `/forecast` (paid plans) for later days.
    Errors come back as HTTP 200 with `{"success": false, "error": {code, type, info}}`."""

    horizon_days = 14
    APOLOGY = "Sorry, I can't reach the weather service right now. Please try again in a moment."

    def __init__(self, resources: FulfillmentResources):
        super().__init__(resources)
        s = resources.settings
        self.base_url = s.dialog.weatherstack_url
        self.key = s.dialog.weatherstack_api_key.get_secret_value() if s.dialog.weatherstack_api_key else None
        self.timeout = s.dialog.fulfillment_timeout_s

    def _get(self, path: str, params: dict[str, Any]) -> dict:
        if not self.key:
            raise FulfillmentError("Sorry, the weather service is not set up yet.",
                                   "weatherstack: no access key; set CALLSENSE_WEATHERSTACK_API_KEY")
        try:
            data = get_json(self.base_url, path, {"access_key": self.key, "units": "m", **params},
                            timeout=self.timeout).data
        except HttpFailure as e:
            apology = ("Sorry, the weather service is taking too long to answer. Please try again in a moment."
                       if e.kind == "timeout" else self.APOLOGY)
            raise FulfillmentError(apology, f"weatherstack {path}: {e}") from None
        if not isinstance(data, dict):
            raise FulfillmentError(self.APOLOGY, f"weatherstack {path}: unexpected response {type(data).__name__}")
        if data.get("success") is False or "error" in data:
            err = data.get("error") or {}
            raise FulfillmentError(self.APOLOGY, f"weatherstack {path}: error {err.get('code')} "
                                   f"{err.get('type')}: {err.get('info')}")
        return data

    def report(self, location: str, days: list[date]) -> WeatherReport:
        today = self.resources.today()
        if days == [today]:
            data = self._get("/current", {"query": location})
            try:
                cur = data["current"]
                desc = (cur.get("weather_descriptions") or [""])[0] or ""
                precip = float(cur.get("precip") or 0)
                temp = float(cur["temperature"])
                lowered = desc.lower()
                wet = precip > 0 or any(w in lowered for w in ("rain", "shower", "drizzle", "thunder"))
                snow_cm = precip if "snow" in lowered else 0.0  # /current gives precipitation in mm only
                day = DayForecast(today, desc, temp, temp, 100 if wet else 0, precip, snow_cm,
                                  int(cur.get("humidity") or 0), int(cur.get("cloudcover") or 0))
                name = (data.get("location") or {}).get("name") or location.title()
            except (KeyError, TypeError, ValueError) as e:
                raise FulfillmentError(self.APOLOGY, f"weatherstack /current: unexpected response ({e!r})") from None
            return WeatherReport(name, [day])
        needed = max((d - today).days for d in days) + 1
        data = self._get("/forecast", {"query": location, "forecast_days": min(max(needed, 1), self.horizon_days),
                                       "hourly": 1, "interval": 24})
        try:
            forecast = data["forecast"]
            name = (data.get("location") or {}).get("name") or location.title()
            out = []
            wanted = {d.isoformat(): d for d in days}
            for key, day in forecast.items():
                if key not in wanted:
                    continue
                hourly = (day.get("hourly") or [{}])[0]
                desc = (hourly.get("weather_descriptions") or [""])[0] or ""
                out.append(DayForecast(
                    wanted[key], desc, float(day["maxtemp"]), float(day["mintemp"]),
                    int(hourly.get("chanceofrain") or hourly.get("chanceofsnow") or 0),
                    float(hourly.get("precip") or 0), float(day.get("totalsnow") or 0),
                    int(hourly.get("humidity") or 0), int(hourly.get("cloudcover") or 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FulfillmentError(self.APOLOGY, f"weatherstack /forecast: unexpected response ({e!r})") from None
        out.sort(key=lambda f: f.day)
        return WeatherReport(name, out)


# ------------------------------------------------------------------------------- periods


@dataclass
class Period:
    days: list[date]
    phrase: str  # "today", "tomorrow", "next week", "on Thursday"


def resolve_period(time_text: str | None, today: date, horizon: int) -> Period:
    """The days a time expression covers ("next week" = the next 7 days)."""
    t = " ".join(labels.tokenize(time_text or ""))
    if not t or t in ("today", "now", "right now", "currently", "this morning", "this afternoon", "this evening",
                      "later today", "later"):
        return Period([today], "today")
    if t in ("tonight", "this night"):
        return Period([today], "tonight")
    if "day after tomorrow" in t:
        return Period([today + timedelta(days=2)], "the day after tomorrow")
    if "tomorrow" in t:
        return Period([today + timedelta(days=1)], "tomorrow")
    if "weekend" in t:
        wd = today.weekday()  # Monday 0 .. Sunday 6
        if wd == 6:
            this_weekend = [today - timedelta(days=1), today]
        else:
            saturday = today + timedelta(days=5 - wd) if wd < 5 else today
            this_weekend = [saturday, saturday + timedelta(days=1)]
        if t.startswith("next"):
            return Period([d + timedelta(days=7) for d in this_weekend], "next weekend")
        return Period([d for d in this_weekend if d >= today], "this weekend")
    if any(w in t for w in ("week", "few days", "coming days", "next days", "7 days", "seven days")):
        phrase = "next week" if "next week" in t else "this week" if "this week" in t else "over the next days"
        return Period([today + timedelta(days=i) for i in range(min(horizon, 7))], phrase)
    m = re.search(r"in (\d+|two|three|four|five|six) days", t)
    if m:
        n = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}.get(m.group(1)) or int(m.group(1))
        return Period([today + timedelta(days=n)], f"in {n} days")
    for i, name in enumerate(WEEKDAYS):
        if name in t:
            ahead = (i - today.weekday()) % 7
            if "next" in t and ahead == 0:
                ahead = 7
            return Period([today + timedelta(days=ahead)], "today" if ahead == 0 else f"on {name.title()}")
    return Period([today], "today")


# ------------------------------------------------------------------------------- answers


class Units:
    def __init__(self, system: str):
        self.imperial = system == "imperial"

    def temp(self, c: float) -> str:
        return f"{round(c * 9 / 5 + 32)}°F" if self.imperial else f"{round(c)}°C"

    def rain(self, mm: float) -> str:
        if self.imperial:
            inches = mm / 25.4
            return f"{max(inches, 0.1):.1f} inches" if inches >= 0.05 else "a trace"
        return f"{mm:.0f} mm" if mm >= 1 else "a trace"

    def snow(self, cm: float) -> str:
        if self.imperial:
            return f"{max(cm / 2.54, 0.1):.1f} inches"
        return f"{cm:.0f} cm"


def _day_name(d: date, today: date) -> str:
    offset = (d - today).days
    return "today" if offset == 0 else "tomorrow" if offset == 1 else WEEKDAYS[d.weekday()].title()


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


TEMP_WORDS = {
    "hot": lambda f: f.high_c >= 29, "warm": lambda f: f.high_c >= 22, "cold": lambda f: f.low_c <= 5,
    "chilly": lambda f: f.low_c <= 10, "cool": lambda f: f.high_c <= 17, "freezing": lambda f: f.low_c <= 0,
    "mild": lambda f: 12 <= f.high_c <= 24,
}


def answer(intent: str, report: WeatherReport, period: Period, units: Units, today: date, *,
           yes_no: bool = False, user_text: str = "") -> str:
    loc, days, when = report.location, report.days, period.phrase
    single = len(days) == 1
    first = days[0]

    def names(selected: list[DayForecast]) -> str:
        text = _join([_day_name(d.day, today) for d in selected])
        return text if text.startswith(("today", "tomorrow")) else f"on {text}"

    if intent in ("rainfall", "rain"):
        rainy = [d for d in days if d.rainy]
        if intent == "rainfall" or yes_no:
            if single:
                if first.rainy:
                    return (f"Yes, rain is likely in {loc} {when}: a {first.precip_chance}% chance, "
                            f"about {units.rain(first.precip_mm)}.")
                if first.precip_chance >= 30:
                    return f"Maybe: there is a {first.precip_chance}% chance of rain in {loc} {when}."
                return f"No, no rain is expected in {loc} {when}."
            if rainy:
                detail = _join([f"{_day_name(d.day, today)} ({d.precip_chance}%)" for d in rainy])
                detail = detail if detail.startswith(("today", "tomorrow")) else f"on {detail}"
                return f"Yes, rain is expected in {loc} {when}: {detail}."
            return f"No, no rain is expected in {loc} {when}."
        total = sum(d.precip_mm for d in days if d.snow_cm == 0 or d.rainy)
        if total < 0.5:
            return f"No rain to speak of is expected in {loc} {when}."
        return f"About {units.rain(total)} of rain is expected in {loc} {when}" + (
            f", mostly {names([max(days, key=lambda d: d.precip_mm)])}." if not single else
            f" ({first.precip_chance}% chance).")
    if intent in ("snow", "snowfall"):
        snowy = [d for d in days if d.snowy]
        total = sum(d.snow_cm for d in days)
        if intent == "snowfall" or yes_no:
            if not snowy:
                return f"No, no snow is expected in {loc} {when}."
            return f"Yes, snow is expected in {loc} {when}" + ("" if single else f": {names(snowy)}") + (
                f", about {units.snow(total)}." if total > 0 else ".")
        if total <= 0:
            return f"No snow is expected in {loc} {when}."
        return f"About {units.snow(total)} of snow is expected in {loc} {when}."
    if intent == "tempyesno":
        word = next((w for w in labels.tokenize(user_text) if w in TEMP_WORDS), None)
        if word is None:
            intent = "temperature"
        else:
            matching = [d for d in days if TEMP_WORDS[word](d)]
            if single:
                verdict = "Yes" if matching else "No"
                return (f"{verdict}, it will{'' if matching else ' not'} be {word} in {loc} {when}: "
                        f"a high of {units.temp(first.high_c)} and a low of {units.temp(first.low_c)}.")
            if matching:
                return f"Yes, it will be {word} in {loc} {names(matching)}."
            return f"No, it will not be {word} in {loc} {when}."
    if intent == "temperature":
        if single:
            return f"In {loc} {when}: a high of {units.temp(first.high_c)} and a low of {units.temp(first.low_c)}."
        highs = sorted(d.high_c for d in days)
        lows = sorted(d.low_c for d in days)
        return (f"In {loc} {when}: highs from {units.temp(highs[0])} to {units.temp(highs[-1])}, "
                f"lows from {units.temp(lows[0])} to {units.temp(lows[-1])}.")
    if intent in ("sunny", "cloudy"):
        test = (lambda d: d.sunny) if intent == "sunny" else (lambda d: d.cloudy)
        matching = [d for d in days if test(d)]
        if single:
            if matching:
                return f"Yes, it will be {intent} in {loc} {when} ({first.condition.lower()})."
            return f"No, {first.condition.lower()} is expected in {loc} {when}."
        if matching:
            return f"It will be {intent} in {loc} {names(matching)}."
        return f"No {intent} days are expected in {loc} {when}."
    if intent == "humidity":
        if yes_no:
            humid = [d for d in days if d.humidity >= 70]
            if single:
                verdict = "Yes, it will be humid" if humid else "No, it will not be very humid"
                return f"{verdict} in {loc} {when}: {first.humidity}% humidity."
            if humid:
                return f"Yes, it will be humid in {loc} {names(humid)}."
            return f"No, it will not be very humid in {loc} {when}."
        if single:
            return f"Humidity in {loc} {when} will be around {first.humidity}%."
        hs = sorted(d.humidity for d in days)
        return f"Humidity in {loc} {when} will be between {hs[0]}% and {hs[-1]}%."
    # weather (and anything unknown): a summary.
    if single:
        rain = f", with a {first.precip_chance}% chance of rain" if first.precip_chance >= 30 and not first.snowy else ""
        return (f"In {loc} {when}: {first.condition.lower()}, a high of {units.temp(first.high_c)} and a low of "
                f"{units.temp(first.low_c)}{rain}.")
    common = Counter(d.condition.lower() for d in days).most_common(1)[0][0]
    highs = sorted(d.high_c for d in days)
    rainy = [d for d in days if d.rainy]
    tail = f"; rain likely {names(rainy)}" if rainy else ""
    return (f"In {loc} {when}: {common} most days, highs from {units.temp(highs[0])} to {units.temp(highs[-1])}"
            f"{tail}.")


# ------------------------------------------------------------------------------ provider


@fulfillment_providers.register("Weather")
class WeatherFulfillment(FulfillmentProvider):
    """Reads `intent` (WP-7328's weather values or the NLU's weather.* labels), `location`,
    `time`; writes `weather_status` (and `weather_location`)."""

    status_key = "weather_status"
    writes = frozenset({"weather_status", "weather_location"})

    def __init__(self, resources: FulfillmentResources):
        super().__init__(resources)
        self.source = weather_sources.get(resources.settings.dialog.weather_provider)(resources)
        self.units = Units(resources.settings.dialog.weather_units)

    def fulfill(self, context: Mapping[str, Any]) -> dict[str, Any]:
        location = str(context.get("location") or "").strip()
        if not location:
            return {self.status_key: "For which location would you like the weather?"}
        intent = labels.fulfillment_intent(str(context.get("intent") or "weather"))
        nlu_intent = str(context.get("nlu_intent") or "")
        today = self.resources.today()
        period = resolve_period(context.get("time"), today, self.source.horizon_days)
        try:
            report = self.source.report(location, period.days)
        except LocationNotFound as e:
            known = f" I know {_join(e.known[:6])}." if e.known else ""
            return {self.status_key: f"Sorry, I don't have a forecast for {e.location.title()}.{known}"}
        if not report.days:
            return {self.status_key: f"Sorry, I only have forecasts for the next {self.source.horizon_days} days.",
                    "weather_location": report.location}
        text = answer(intent, report, period, self.units, today, yes_no=nlu_intent.endswith("_yes_no"),
                      user_text=str(context.get("user_text") or ""))
        return {self.status_key: text, "weather_location": report.location}
