"""Seeded random-weight LTX-2 test models, written in the published repos' layout, for the tests and benchmarks.

Above the product: nothing in the rest of `ltx2gen` imports this package (tests/test_layout.py checks it). The one
thing a model folder asks of the product, to have its text encoder built at load, is `ltx2gen.built_at_load`.
Command line: `python -m ltx2gen.testing.synthetic --preset tiny --out DIR` (see `synthetic`).
"""
