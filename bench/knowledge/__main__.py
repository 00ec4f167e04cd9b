"""``python -m bench.knowledge``: the knowledge store benchmark (see run.py)."""

from bench.knowledge.run import main

main()
