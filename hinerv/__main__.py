"""``python -m hinerv`` is the same as the ``hinerv`` console script."""

from hinerv.cli import main

main()
