"""``/docs`` (Swagger UI) and ``/redoc``, served with their assets from this process.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, which leaves them blank on a
network without internet. The assets come from the ``fastapi-offline`` package instead
(its files only: the pages are FastAPI's, pointed at them).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

ASSETS_PATH = "/docs/assets"
_ASSETS = files("fastapi_offline") / "static"

INTRODUCTION = """
Promos serves five APIs from one process: its own (**native**, under `/v1`) and one per
system it replaces (tagged *(compat)*), each at that system's paths, with its bodies, status
codes and error shape. The native API's conventions (errors, pagination, idempotency) are in
`docs/api.md`.

## Authentication

Every route that reads private data or changes anything needs a credential, sent as one of:

* **API key** (for services): `Authorization: Bearer pk_...`, or `X-API-Key: pk_...` (that
  header takes API keys only, never a sign-in token). An admin makes one with
  `POST /v1/api-keys` or `promos api-keys create`; its secret is shown once.
* **Sign-in token** (for people): `POST /v1/auth/tokens` (or the Promos API's `POST /signin`)
  with `{"login", "password"}` returns a token, sent as `Authorization: Bearer pt_...` until
  it expires or `DELETE /v1/auth/tokens/current` revokes it.
* **HTTP Basic** with a user's name and password, as the Offers API uses it (failed
  passwords are rate limited like sign-ins).

Roles: `admin` may do everything, including users, API keys, webhooks and the audit log;
`sales` may do everything else. A missing or wrong credential is a 401, a credential
without the role a 403.

**Public routes** (no credential): sign-in, `GET /healthcheck`, the Promos API's promo code
lookup by code (`/promocodes/getbycode/{id}`), specials by SKU (`/special/{sku}`) and the
upgrade-program list (`/upgrade-program`), the discount generator's `get_code` (its user's
secret is in the path), and the Offers player routes (available offers, offer info, claim,
impressions). The public routes and sign-in are rate limited per client address (429 with
`Retry-After`).

In the pages below, **Authorize** takes a Bearer value (token or API key) or a Basic pair.
"""


def install_docs(app: FastAPI) -> None:
    """``/docs``, ``/docs/oauth2-redirect`` and ``/redoc``, with local assets only."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(_ASSETS)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    parameters = {
        **(app.swagger_ui_parameters or {}),
        # Swagger UI would send the document to validator.swagger.io to show a badge.
        "validatorUrl": None,
        "persistAuthorization": True,
    }

    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + "/docs/oauth2-redirect",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=parameters,
        )

    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/docs/oauth2-redirect", swagger_redirect, methods=["GET"], include_in_schema=False
    )
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
