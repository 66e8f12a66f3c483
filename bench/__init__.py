"""Benchmark of lambda-supervisor against awslambdaric and an in-process floor loop (issue #4): ``python -m bench``."""
