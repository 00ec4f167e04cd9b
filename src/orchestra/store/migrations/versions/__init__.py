"""Migration revisions; each domain branches from ``0001_base``."""
