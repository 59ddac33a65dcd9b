"""Fast tests, mirroring the packages: ``tests/rdbpfn``, ``tests/priors``, ``tests/training``,
``tests/eval``; cross-package properties (layout, shared encoding, README) sit here.
``pytest -m slow`` runs the long ones."""
