"""Tests of the ``training`` developer package."""
