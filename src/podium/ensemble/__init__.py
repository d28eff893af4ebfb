"""Per-model gathering, blends and level-2 stackers, all scored on the same folds."""
