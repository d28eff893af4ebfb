"""Competition data: the embedded default, ingest and validation, duplicates, folds."""
