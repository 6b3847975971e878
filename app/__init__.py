"""Claimledger: a ledger of factual claims, their sources and their verdicts."""
