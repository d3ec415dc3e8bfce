"""/docs and /redoc work without internet: every asset they load is served by Promos."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

DOC_PAGES = ["/docs", "/redoc"]


class _Assets(HTMLParser):
    """Every URL a page loads: scripts, style sheets, icons, images, and the spec."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, _tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in {"src", "href", "spec-url"}:
                self.urls.append(value)


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("page", DOC_PAGES)
async def test_doc_pages_load_only_local_assets(client, page):
    html = (await client.get(page)).text

    urls = _assets(html)

    assert len(urls) >= 3, urls  # the script, the icon and the spec at least
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "http://" not in html
    assert "https://" not in html


@pytest.mark.parametrize("page", DOC_PAGES)
async def test_every_asset_of_the_doc_pages_is_served(client, page):
    urls = _assets((await client.get(page)).text)

    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 0, url


async def test_swagger_ui_asks_no_outside_validator(client):
    html = (await client.get("/docs")).text

    assert '"validatorUrl": null' in html


async def test_the_document_says_how_to_authenticate(client):
    description = (await client.get("/openapi.json")).json()["info"]["description"]

    for words in ("API key", "X-API-Key", "POST /v1/auth/tokens", "HTTP Basic", "Public routes"):
        assert words in description
