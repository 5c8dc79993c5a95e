"""Package discovery; everything else is in pyproject.toml.

Every package under ``learnedloss/`` is found (a new task family folder needs no line here),
and the top-level ``pretrained/`` folder ships as ``learnedloss.pretrained``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["learnedloss", "learnedloss.*"]), "learnedloss.pretrained"],
    package_dir={"learnedloss.pretrained": "pretrained"},
)
