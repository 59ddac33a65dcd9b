"""Tests of the ``eval`` developer package."""
