"""Task families: one folder per family (tasks, recipe, evaluation, and its `FamilyParts` in
``family.py``), and the registry of `Family` objects that the CLI, ``learnedloss evaluate``
and the model cards loop over. Nothing here imports `learnedloss.cli`."""
