"""The public pages of published fact-checks: no key, no cookies, every user text escaped,
the embedded JSON-LD the same as /claimreview (read by an independent extractor)."""

import json
import xml.etree.ElementTree as ET

import extruct
import lxml.html
import pytest

from tests.factories import assert_problem, get_json, make_claim, review

HOSTILE = ("</script><script>alert(1)</script> "
           "\u200f\u0645\u0631\u062d\u0628\u0627\u200f <b>bold</b> & "
           "Cafe\u0301 n\u0303 \u202eevil\u202c \"quoted\" 'single'")


def published(client, auth, text=None, status="false", **fields):
    claim = make_claim(client, auth("ingester"), text, **fields)
    review(client, auth("checker"), claim["id"], status, "Checked <i>carefully</i>.")
    response = client.post(f"/v1/claims/{claim['id']}/publish", headers=auth("checker"), json={
        "url": f"https://factcheck.example.org/{claim['id']}",
        "headline": f"Headline of {claim['text'][:80]}"})
    assert response.status_code == 200, response.text
    return get_json(client, f"/v1/claims/{claim['id']}", auth("reader"))


def claimreview(client, auth, claim_id):
    return get_json(client, f"/v1/claims/{claim_id}/claimreview", auth("reader"))


def test_get_fact_check_page_embeds_claimreview_extruct_reads(client, auth):
    claim = published(client, auth, attributions=[
        {"source": "Government of Ukraine", "stance": "asserts",
         "citation_url": "https://example.org/a?x=1&y=2"}])
    page = client.get(f"/c/{claim['id']}")  # no key
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in page.headers
    data = extruct.extract(page.text, base_url=f"http://testserver/c/{claim['id']}",
                           syntaxes=["json-ld", "opengraph"], uniform=False)
    assert data["json-ld"] == [claimreview(client, auth, claim["id"])]
    og = dict(data["opengraph"][0]["properties"])
    assert og["og:url"] == f"http://127.0.0.1:8000/c/{claim['id']}"
    assert og["og:title"].startswith("Headline of") and og["og:type"] == "article"
    tree = lxml.html.fromstring(page.text)
    assert tree.get("lang") == "en"
    assert tree.xpath("//link[@rel='canonical']/@href") == [og["og:url"]]
    assert tree.xpath("//a[@href='https://example.org/a?x=1&y=2']")


def test_get_fact_check_page_escapes_hostile_text(client, auth):
    claim = published(client, auth, HOSTILE, language="ar")
    page = client.get(f"/c/{claim['id']}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<script>alert(1)" not in html and "<b>bold</b>" not in html
    assert "<i>carefully</i>" not in html
    tree = lxml.html.fromstring(html)
    assert tree.get("lang") == "ar"
    scripts = tree.xpath("//script")
    assert len(scripts) == 1 and scripts[0].get("type") == "application/ld+json"
    embedded = json.loads(scripts[0].text)
    assert embedded == claimreview(client, auth, claim["id"])
    assert embedded["claimReviewed"] == claim["text"]  # NFC: "Café", marks kept
    assert "Café" in claim["text"] and "\u200f" in claim["text"]
    # The text shows as text: the page's visible claim is exactly the stored one.
    assert tree.xpath("//blockquote")[0].text_content() == claim["text"]
    assert "Checked <i>carefully</i>." in tree.text_content()
    data = extruct.extract(html, syntaxes=["json-ld"], uniform=False)
    assert data["json-ld"] == [embedded]


def test_get_fact_check_page_withdrawn_is_410_and_unknown_404(client, auth):
    claim = published(client, auth)
    assert client.delete(f"/v1/claims/{claim['id']}/publish",
                         headers=auth("checker")).status_code == 204
    assert_problem(client.get(f"/c/{claim['id']}"), 410, contains="withdrawn")
    assert_problem(client.get("/c/clm_00000000000000000000"), 404)
    unpublished = make_claim(client, auth("ingester"), "A claim nobody published.")
    assert_problem(client.get(f"/c/{unpublished['id']}"), 404)


def test_list_fact_check_pages_newest_first_with_paging(client, auth):
    ids = [published(client, auth, f"Claim number {n} about Belarus.")["id"] for n in range(3)]
    first = client.get("/c/", params={"limit": 2})
    assert first.status_code == 200, first.text
    tree = lxml.html.fromstring(first.text)
    links = tree.xpath("//ol/li/a/@href")
    assert links == [f"http://127.0.0.1:8000/c/{i}" for i in reversed(ids)][:2]
    (next_url,) = tree.xpath("//a[@rel='next']/@href")
    second = client.get("/c/" + next_url.split("/c/", 1)[1])
    assert lxml.html.fromstring(second.text).xpath("//ol/li/a/@href") == [
        f"http://127.0.0.1:8000/c/{ids[0]}"]
    assert not lxml.html.fromstring(second.text).xpath("//a[@rel='next']")
    assert_problem(client.get("/c/", params={"cursor": "bm90LWEtY3Vyc29y"}), 400)
    assert_problem(client.get("/c/", params={"limit": 0}), 422)


def test_sitemap_and_feed_list_only_live_publications(client, auth):
    keep = published(client, auth, "Claim kept on the public pages.")
    drop = published(client, auth, "Claim withdrawn from the public pages.", status="true")
    assert client.delete(f"/v1/claims/{drop['id']}/publish",
                         headers=auth("checker")).status_code == 204
    sitemap = client.get("/sitemap.xml")
    assert sitemap.status_code == 200 and "set-cookie" not in sitemap.headers
    assert sitemap.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(sitemap.content)
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    assert [e.text for e in root.findall("s:url/s:loc", ns)] == [
        f"http://127.0.0.1:8000/c/{keep['id']}"]
    feed = client.get("/claimreview.jsonl")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in feed.text.splitlines()]
    assert lines == [claimreview(client, auth, keep["id"])]


@pytest.mark.parametrize("url", ["/c/", "/sitemap.xml", "/claimreview.jsonl"])
def test_public_routes_are_read_only_and_need_no_key(client, url):
    assert client.get(url, headers={"Cookie": "session=1"}).status_code == 200
    response = client.post(url, json={})
    assert_problem(response, 405)
