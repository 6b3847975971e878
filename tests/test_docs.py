"""/docs and /redoc work without internet: every file they load is served by the app."""

import re
from html.parser import HTMLParser

import pytest


class References(HTMLParser):
    """Every URL a page loads: src and href attributes, and its inline scripts' URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        self.urls += [value for name, value in attrs
                      if name in ("src", "href", "spec-url") and value]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_loads_nothing_from_other_hosts(client, page):
    response = client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    # Any absolute or protocol-relative URL, wherever it is in the page.
    assert re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", response.text) == []

    refs = References()
    refs.feed(response.text)
    inline = [u for script in refs.scripts for u in re.findall(r"url: '([^']+)'", script)]
    urls = refs.urls + inline
    assert any(u.endswith(".js") for u in urls), urls
    assert "/openapi.json" in urls
    for url in urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, (url, asset.status_code)
        assert len(asset.content) > 0, url
    scripts = [client.get(u).text for u in urls if u.endswith(".js")]
    assert all(len(js) > 100_000 for js in scripts)  # the real bundles, not a stub
