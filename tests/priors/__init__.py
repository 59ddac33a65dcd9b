"""Tests of the ``priors`` developer package."""
