"""Fulfillment: the providers behind capitalised flow states (`Weather`, `Retail`)."""

from callsense.dialog.fulfillment.base import (
    FulfillmentError,
    FulfillmentProvider,
    FulfillmentResources,
    fulfillment_providers,
)

__all__ = ["FulfillmentError", "FulfillmentProvider", "FulfillmentResources", "fulfillment_providers"]
