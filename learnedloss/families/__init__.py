"""Task families: one folder per family (tasks, recipe, evaluation, CLI arguments), and the
registry that the CLI, ``learnedloss evaluate`` and the model cards loop over."""
