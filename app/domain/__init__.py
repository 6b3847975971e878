"""The ledger's logic: claims, sources, reviews, links, search, ingest. No FastAPI here."""
