"""`python -m workers` runs the worker daemon, like `workpool-worker`."""

from workers.cli import main

main()
