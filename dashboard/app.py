"""The Streamlit script behind `callsense dashboard`: sign-in, then the registered pages.

Run it through the CLI (it passes the settings on as CALLSENSE_* variables), or directly:
``streamlit run dashboard/app.py``.
"""

from __future__ import annotations

import streamlit as st

from callsense.core.settings import Settings
from callsense.dashboard.auth import SignInLimiter, UserDirectory, UsersFileError, users_file
from callsense.dashboard.data import DashboardData, User
from callsense.dashboard.registry import PageContext, PageSpec, home_page, load_pages, pages_for
from callsense.store.db import describe_url, make_engine

USER_KEY = "callsense.user"


@st.cache_resource(show_spinner=False)
def store_engine(url: str):
    return make_engine(url)


@st.cache_resource(show_spinner=False)
def sign_in_limiter() -> SignInLimiter:
    return SignInLimiter()


def _client_address() -> str | None:
    try:
        return st.context.ip_address
    except AttributeError:  # older Streamlit
        return None


def sign_in_form(directory: UserDirectory, settings: Settings) -> None:
    """The sign-in page. On success the user goes into the session and the app reruns."""
    _, middle, _ = st.columns([1, 1.3, 1])
    with middle:
        st.title(":material/headset_mic: callsense")
        st.caption("Support-center speech analytics: sign in to see live calls, call reviews and agent history.")
        try:
            any_users = directory.has_users()
        except UsersFileError as e:
            st.error(f"The users file is not valid: {e}")
            any_users = False
        if not any_users:
            st.info("**No users yet.** Create the first one on the server:\n\n"
                    "`callsense dashboard add-user maria --role manager --role reviewer`\n\n"
                    f"or list users in `{users_file(settings)}` (see `callsense dashboard add-user --help`).")
        with st.form("sign-in", border=True):
            username = st.text_input("User name", key="sign-in-user", autocomplete="username")
            password = st.text_input("Password", type="password", key="sign-in-password", autocomplete="current-password")
            submitted = st.form_submit_button("Sign in", type="primary", width="stretch")
        if submitted:
            limiter, address = sign_in_limiter(), _client_address()
            wait = limiter.locked_for(username, address)
            if wait > 0:
                st.error(f"Too many failed sign-ins. Try again in {max(1, round(wait / 60))} minute(s), "
                         "or ask a manager to reset the password (`callsense dashboard add-user --replace`).")
                return
            try:
                user = directory.authenticate(username, password)
            except UsersFileError as e:
                st.error(f"The users file is not valid: {e}")
                return
            if user is None:
                limiter.failed(username, address)
                st.error("Wrong user name or password.")
                return
            limiter.succeeded(username)
            st.session_state[USER_KEY] = user
            st.rerun()


def _named(fn, key: str):
    def run() -> None:
        fn()

    run.__name__ = f"sign_in_{key.replace('-', '_')}"
    return run


def _runner(spec: PageSpec, ctx: PageContext):
    def run() -> None:
        spec.render(ctx)

    run.__name__ = f"page_{spec.key}"
    return run


def sidebar(user: User, settings: Settings) -> None:
    with st.sidebar:
        st.markdown(f"**{user.display_name}**  \n{', '.join(sorted(user.roles))}"
                    + (f" · agent `{user.agent_id}`" if "agent" in user.roles and user.agent_id else ""))
        if st.button("Sign out", icon=":material/logout:", key="sign-out"):
            st.session_state.pop(USER_KEY, None)
            st.rerun()
        st.caption(f"Store: {describe_url(settings.resolved_database_url)}")


def main() -> None:
    st.set_page_config(page_title="callsense", layout="wide")
    settings = Settings()
    engine = store_engine(settings.resolved_database_url)
    user: User | None = st.session_state.get(USER_KEY)
    if user is None:
        # Every page's address leads to the sign-in form, and on to that page once signed in.
        def show_sign_in() -> None:
            sign_in_form(UserDirectory(engine, users_file(settings)), settings)

        keys = ["sign-in", *(spec.key for spec in load_pages(settings.dashboard.page_modules))]
        st.navigation([st.Page(_named(show_sign_in, key), title="Sign in", url_path=key, default=i == 0)
                       for i, key in enumerate(keys)], position="hidden").run()
        return
    data = DashboardData(engine, user, live_window_h=settings.dashboard.live_window_h,
                         negative_streak_n=settings.dashboard.negative_streak)
    ctx = PageContext(settings=settings, user=user, data=data, engine=engine)
    specs = pages_for(user, settings.dashboard.page_modules)
    home = home_page(specs, user)
    pages = {spec.key: st.Page(_runner(spec, ctx), title=spec.title, icon=spec.icon, url_path=spec.key, default=spec is home)
             for spec in specs}

    def goto(key: str, **state) -> None:
        st.session_state.update(state)
        st.switch_page(pages[key])

    ctx.goto = goto
    ctx.extra["pages"] = pages
    nav = st.navigation(list(pages.values()), position="sidebar")
    sidebar(user, settings)
    nav.run()


main()
