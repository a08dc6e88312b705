"""The dashboard's pages register themselves here, so adding a page is adding one module.

A page is a function taking a `PageContext`, decorated with `page(...)`::

    from callsense.dashboard.registry import PageContext, page

    @page("assistant", title="Assistant", icon=":material/support_agent:", order=60)
    def assistant_page(ctx: PageContext) -> None:
        ...

The app imports every `callsense.dashboard.page_*` module, then each module named in
settings.dashboard.page_modules (default: `callsense.dialog.dashboard_page`), skipping
those not installed. `roles` limits who sees the page in the navigation; the data layer
still checks every read.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sqlalchemy.engine import Engine

from callsense.core.settings import Settings
from callsense.dashboard.data import DashboardData, User


@dataclass
class PageContext:
    settings: Settings
    user: User
    data: DashboardData
    engine: Engine
    # goto(page_key, **state): switch to another page, leaving `state` in st.session_state.
    goto: Callable[..., None] = lambda key, **state: None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PageSpec:
    key: str  # url path and id
    title: str
    render: Callable[[PageContext], None]
    icon: str | None = None
    order: int = 100
    roles: frozenset[str] | None = None  # None: every signed-in user
    home_for: frozenset[str] = frozenset()  # users with one of these roles land here

    def allows(self, user: User) -> bool:
        return self.roles is None or bool(self.roles & user.roles)


_PAGES: dict[str, PageSpec] = {}


def page(key: str, *, title: str, icon: str | None = None, order: int = 100, roles: Iterable[str] | None = None,
         home_for: Iterable[str] = ()):
    """Register the decorated function as a dashboard page."""

    def deco(fn: Callable[[PageContext], None]) -> Callable[[PageContext], None]:
        _PAGES[key] = PageSpec(key=key, title=title, render=fn, icon=icon, order=order,
                               roles=frozenset(roles) if roles is not None else None, home_for=frozenset(home_for))
        return fn

    return deco


def registered() -> list[PageSpec]:
    return sorted(_PAGES.values(), key=lambda p: (p.order, p.key))


def load_pages(extra_modules: Iterable[str] = ()) -> list[PageSpec]:
    """Import the built-in page modules and the extra ones; return every page, in order."""
    import callsense.dashboard as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("page_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    for name in extra_modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            # Only "that module is not there" is skipped; a page's own broken import is not.
            if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
                raise
    return registered()


def pages_for(user: User, extra_modules: Iterable[str] = ()) -> list[PageSpec]:
    return [p for p in load_pages(extra_modules) if p.allows(user)]


def home_page(pages: list[PageSpec], user: User) -> PageSpec:
    """The first page (in order) that is home for one of the user's roles, else the first."""
    return next((p for p in pages if p.home_for & user.roles), pages[0])
