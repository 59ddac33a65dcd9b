"""rdbpfn: a relational foundation model trained only on synthetic databases.

Public surface:

- :class:`RDBPFNClassifier` -- sklearn-style ``fit`` / ``predict_proba`` in-context classifier;
  :class:`RDBPFNRegressor` -- its regression twin (``predict``, ``return_std``, quantiles).
- :class:`Database`, :class:`Table` -- a typed relational database.
- :func:`linearize` -- Deep Feature Synthesis: one feature row per (entity, cutoff).
- :class:`TableEncoder`, :func:`encode_frame` -- the frame-to-matrix encoding that the prior,
  the benchmark and the classifier share.
- :class:`Query` -- a predictive query (``PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH
  customers.customer_id``) and its labels from the database's own history.
- :class:`RelationalClassifier`, :class:`RelationalRegressor` -- in-context prediction for
  (entity, cutoff) pairs of a database; :func:`predict` / :func:`backtest` -- answers to a
  query from history alone.
- :class:`Episode` -- one in-context problem (context rows, query rows).
- :class:`ModelConfig`, :class:`RDBPFN` -- the bi-attention transformer;
  :func:`load_checkpoint` / :func:`save_checkpoint` -- its file format.

``rdbpfn`` is the ground floor of this repository: it imports nothing from the developer
packages ``priors``, ``training`` and ``eval``, and it owns every agreement they share.
"""

from __future__ import annotations

from rdbpfn.checkpoint import load_checkpoint, save_checkpoint
from rdbpfn.classifier import RDBPFNClassifier
from rdbpfn.database import Database
from rdbpfn.dfs import linearize
from rdbpfn.encoding import TableEncoder, encode_frame
from rdbpfn.episode import Episode
from rdbpfn.forecast import backtest, predict
from rdbpfn.model import RDBPFN, ModelConfig
from rdbpfn.query import Query, QuerySyntaxError
from rdbpfn.regressor import RDBPFNRegressor
from rdbpfn.relational import RelationalClassifier, RelationalRegressor
from rdbpfn.table import Table

__version__ = "0.1.0"

__all__ = [
    "RDBPFN",
    "Database",
    "Episode",
    "ModelConfig",
    "Query",
    "QuerySyntaxError",
    "RDBPFNClassifier",
    "RDBPFNRegressor",
    "RelationalClassifier",
    "RelationalRegressor",
    "Table",
    "TableEncoder",
    "backtest",
    "encode_frame",
    "linearize",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
]
