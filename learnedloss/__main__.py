"""``python -m learnedloss``: the ``learnedloss`` command."""

from learnedloss.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
