"""Knowledge store benchmark: embedding and ingest rate, query latency, retrieval quality."""
