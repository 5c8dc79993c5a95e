"""Losses bundled with learnedloss, one folder each (config.json, model.safetensors, README.md).

This folder is installed as the sub-package ``learnedloss.pretrained``; see
``learnedloss.bundled`` for how names are resolved.
"""
