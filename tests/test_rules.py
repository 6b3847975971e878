"""Ingest's honest per-item results: an item sent again with nothing new is `unchanged`, and
`attributions_added` counts the attributions each item brought."""

from tests.factories import SOLDIERS, get_json, ingest


def test_ingest_same_item_again_is_unchanged_and_created_counts_attributions(client, auth):
    item = {"text": SOLDIERS, "origin": "honest", "external_id": "1", "attributions": [
        {"source": "Government of Ukraine", "stance": "asserts"},
        {"source": "ISW", "stance": "supports"}]}
    first = ingest(client, auth("ingester"), [item])
    assert first["items"][0]["status"] == "created"
    assert first["items"][0]["attributions_added"] == 2
    claim = get_json(client, f"/v1/claims/{first['items'][0]['claim_id']}", auth("reader"))
    again = ingest(client, auth("ingester"), [item])
    assert again["items"][0]["status"] == "unchanged"
    assert again["items"][0]["attributions_added"] == 0
    assert again["summary"]["unchanged"] == 1 and again["summary"]["updated"] == 0
    assert get_json(client, f"/v1/claims/{claim['id']}", auth("reader"))["version"] == \
        claim["version"]
    more = ingest(client, auth("ingester"), [{**item, "attributions": [
        *item["attributions"], {"source": "BelTA", "stance": "reports"}]}])
    assert (more["items"][0]["status"], more["items"][0]["attributions_added"]) == ("updated", 1)
