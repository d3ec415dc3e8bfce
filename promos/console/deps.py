"""What console pages share: the signed-in person, the admin check, and rendering a page."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import jinja2
from fastapi import Depends, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from promos.auth.errors import AdminRequired
from promos.console import csrf
from promos.console.areas import areas_for
from promos.console.sessions import Lifetime, Session
from promos.settings import Settings

PREFIX = "/admin"
SIGN_IN = f"{PREFIX}/sign-in"
ACCOUNT = f"{PREFIX}/account"
SESSION_COOKIE = "promos_session"
STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _versions() -> dict[str, str]:
    """Each static file's content hash, put in its URL so that a browser's copy of an older
    one is never used."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC.iterdir()
        if path.is_file()
    }


_VERSIONS = _versions()


def static_url(name: str) -> str:
    """The URL of the static file ``name``, with its version."""
    return f"{PREFIX}/static/{name}?v={_VERSIONS[name]}"


def when(moment: datetime | None) -> str:
    """A time as every console page shows it: to the second, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


environment.globals["static_url"] = static_url
environment.filters["when"] = when


def lifetime(settings: Settings) -> Lifetime:
    """How long console sessions live, from the settings."""
    return Lifetime(
        idle=timedelta(minutes=settings.console_idle_minutes),
        absolute=timedelta(hours=settings.console_session_hours),
    )


def session_of(request: Request) -> Session | None:
    """The request's session, as the console's route class found it."""
    session: Session | None = getattr(request.state, "console_session", None)
    return session


def current_person(request: Request) -> Session:
    """The signed-in person (every page but sign-in is served to signed-in people only)."""
    session = session_of(request)
    if session is None:  # the route class redirects such requests to sign-in first
        raise RuntimeError("a console page that needs a session was served without one")
    return session


Person = Annotated[Session, Depends(current_person)]


def require_admin(person: Person) -> Session:
    """The signed-in person, who must be an admin: 403 for sales."""
    if not person.is_admin:
        raise AdminRequired("this page is for admins only")
    return person


Admin = Annotated[Session, Depends(require_admin)]


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    csrf_token: str | None = None,
) -> HTMLResponse:
    """The page ``template`` with the console's layout: navigation, the person, the flash
    message, and the CSRF token of the session (or ``csrf_token`` before sign-in)."""
    session = session_of(request)
    values: dict[str, Any] = {
        "person": session,
        "nav": areas_for(is_admin=session.is_admin) if session is not None else (),
        "csrf_token": session.csrf_token if session is not None else csrf_token,
        "csrf_field": csrf.FIELD,
        "flash": session.flash if session is not None else None,
        "current_path": request.url.path,
        "title": None,
    }
    values.update(context or {})
    html = environment.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code)


def see_other(url: str) -> RedirectResponse:
    """Post/redirect/get: the browser GETs ``url`` next."""
    return RedirectResponse(url, status_code=303)


def local_path(target: str | None, default: str = PREFIX) -> str:
    """``target`` if it is a console page's path (never another site's), else ``default``."""
    if not target or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith(PREFIX):
        return default
    if target != PREFIX and not target.startswith((f"{PREFIX}/", f"{PREFIX}?")):
        return default
    return target


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Whether cookies are marked Secure: over HTTPS (as a trusted proxy says), or always if
    ``PROMOS_CONSOLE_SECURE_COOKIES``."""
    return settings.console_secure_cookies or request.url.scheme == "https"


def set_cookie(
    response: Response,
    request: Request,
    settings: Settings,
    name: str,
    value: str,
    *,
    same_site: str = "lax",
) -> None:
    """A console cookie: HttpOnly, for /admin only, Secure where it can be."""
    response.set_cookie(
        name,
        value,
        path=PREFIX,
        httponly=True,
        secure=secure_cookies(request, settings),
        samesite=same_site,  # type: ignore[arg-type]
    )


def delete_cookie(response: Response, request: Request, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path=PREFIX, httponly=True, secure=secure_cookies(request, settings), samesite="lax"
    )
