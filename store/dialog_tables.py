"""SQLModel tables of the retail assistant (issue 5): conversation sessions, the turn
archive (the training loop's raw material), and the embedded retail catalog."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class DialogSession(SQLModel, table=True):
    """One conversation: where it waits and what it remembers (the flow context)."""

    __tablename__ = "dialog_sessions"
    id: str = Field(primary_key=True, max_length=200)
    flows: str = ""  # the main flow's name, to notice a session from other flows
    state: str = ""  # the input state the conversation waits in
    context_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    turns: int = 0
    created_at: float = 0.0
    updated_at: float = Field(default=0.0, index=True)


class DialogTurn(SQLModel, table=True):
    """Every user turn and the assistant's reply, for review and retraining."""

    __tablename__ = "dialog_turns"
    __table_args__ = (
        UniqueConstraint("session_id", "turn", name="uq_dialog_turn"),
        Index("ix_dialog_turns_day", "day"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    session_id: str = Field(index=True, max_length=200)
    turn: int
    at: float  # unix time
    day: str = ""  # YYYY-MM-DD (UTC), for the daily export
    channel: str = "text"  # text | voice
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    asr_confidence: float | None = None
    intent: str | None = None  # flow-level NLU label; jarvis_error when the NLU failed
    confidence: float | None = None
    slots_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    tokens: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # space separated
    tags: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # BIO per token
    state: str = ""  # the state the conversation waits in after the reply
    reply: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    nlu_backend: str = ""
    latency_ms: float | None = None
    # Review (annotation) for retraining: filled through `callsense dialog import-reviews`.
    reviewed: bool = Field(default=False, index=True)
    reviewed_intent: str | None = None  # flow-level or training label
    reviewed_tags: str | None = None  # BIO per token of `tokens`


class CatalogStore(SQLModel, table=True):
    """A shop or restaurant of the embedded catalog."""

    __tablename__ = "catalog_stores"
    __table_args__ = (Index("ix_catalog_stores_city_category", "city", "category"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str
    kind: str = "store"  # store | restaurant
    category: str  # electronics, clothing, grocery, ..., thai, sushi, ...
    city: str = Field(index=True)
    address: str
    hours: str = ""
    rating: float = 0.0
    phone: str = ""
    lat: float = 0.0
    lon: float = 0.0
    distance_km: float = 0.0  # from the city's centre: "nearest" for a user who gave a city


class CatalogItem(SQLModel, table=True):
    __tablename__ = "catalog_items"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    category: str = Field(index=True)
    brand: str = ""
    aliases: str = ""  # "|" separated phrases a customer may use ("laptop memory|ram")


class CatalogOffer(SQLModel, table=True):
    """An item's price and stock at one store."""

    __tablename__ = "catalog_offers"
    __table_args__ = (UniqueConstraint("store_id", "item_id", name="uq_catalog_offer"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    store_id: int = Field(index=True, foreign_key="catalog_stores.id")
    item_id: int = Field(index=True, foreign_key="catalog_items.id")
    price: float
    stock: int = 0
