"""Tests of the ``rdbpfn`` package (what a user imports)."""
