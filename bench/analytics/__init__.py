"""The analytics benchmark: dashboard queries over rollups vs the raw ledger (issue 13 §10)."""
