"""The fulfillment interface: a provider reads the context and writes its answer into it.

A flow state whose type is a capitalised word (`Weather`, `Retail`) calls the provider
registered under that word. The provider reads the context (the `intent` the flow wrote,
slots such as `location` and `item`) and returns the keys to write (`weather_status`,
`retail_status`). A provider that cannot answer (service down, timeout, bad key) raises
`FulfillmentError` with an apology for the user: the engine writes the apology into the
provider's status key and `fulfillment_error` into the context, and takes the state's
`error` transition when it has one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, ClassVar, Mapping

from sqlalchemy.engine import Engine

from callsense.core.settings import Settings
from callsense.core.registry import Registry


class FulfillmentError(Exception):
    """A provider could not answer. `apology` is said to the user; `detail` is logged and
    stored in the context key `fulfillment_error`."""

    def __init__(self, apology: str, detail: str):
        super().__init__(detail)
        self.apology = apology
        self.detail = detail


@dataclass
class FulfillmentResources:
    """What providers may use: the settings, the store's database (the embedded catalog
    lives there) and a clock (fixed in tests so forecasts for "this weekend" are stable)."""

    settings: Settings
    db: Engine | None = None
    today: Callable[[], date] = field(default=date.today)


class FulfillmentProvider(ABC):
    #: The context key that receives the answer, or the apology when the provider fails.
    status_key: ClassVar[str]
    #: Every context key the provider may write (the validator knows these are set).
    writes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, resources: FulfillmentResources):
        self.resources = resources

    @abstractmethod
    def fulfill(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The context keys to write. Raises FulfillmentError when it cannot answer."""

    def close(self) -> None:
        pass


fulfillment_providers: Registry[FulfillmentProvider] = Registry(
    "fulfillment provider",
    lazy={"Weather": "callsense.dialog.fulfillment.weather", "Retail": "callsense.dialog.fulfillment.retail"},
)
