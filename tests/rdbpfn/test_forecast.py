"""Relational classification and predictions from a database's own history (no user labels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks

from rdbpfn.checkpoint import save_random_checkpoint
from rdbpfn.database import Database
from rdbpfn.forecast import (
    RARE_SHARE,
    Calibration,
    _balanced_sample,
    backtest,
    fit_from_history,
    predict,
)
from rdbpfn.model import ModelConfig
from rdbpfn.query import Query
from rdbpfn.relational import RelationalClassifier, RelationalRegressor
from rdbpfn.table import Table

START = pd.Timestamp("2022-01-01")
QUERY = "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id"
SUM_QUERY = "PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id"
TINY_REGRESSION = ModelConfig(d_model=16, n_heads=2, d_ffn=32, n_layers=1, n_thinking_rows=2,
                              decoder_hidden=16, task="regression",
                              label_embedding="continuous", n_bins=16)


def shop(seed: int = 0, n_customers: int = 150, days: int = 360) -> Database:
    """Customers whose order rate drifts: some stay active, some fade out."""
    rng = np.random.default_rng(seed)
    signup = START + pd.to_timedelta(rng.integers(0, 120, n_customers), unit="D")
    rate = rng.gamma(1.0, 0.08, n_customers)  # orders per day
    fade = rng.random(n_customers) < 0.5
    rows = []
    for customer in range(n_customers):
        for day in range(int((signup[customer] - START).days), days):
            decay = np.exp(-day / 90) if fade[customer] else 1.0
            if rng.random() < rate[customer] * decay:
                rows.append((customer, START + pd.Timedelta(days=day, hours=int(rng.integers(24))),
                             float(rng.gamma(2, 20)), rng.choice(["web", "app"])))
    orders = pd.DataFrame(rows, columns=["customer_id", "at", "amount", "channel"])
    orders.insert(0, "order_id", np.arange(len(orders)))
    customers = pd.DataFrame({"customer_id": np.arange(n_customers), "signup": signup,
                              "segment": rng.choice(["a", "b"], n_customers)})
    return Database({
        "customers": Table(customers, "customer_id", time_column="signup"),
        "orders": Table(orders, "order_id", {"customer_id": "customers"}, "at"),
    })


@pytest.fixture(scope="module")
def db() -> Database:
    return shop()


def _pairs(db: Database, at: str) -> tuple[pd.DataFrame, np.ndarray]:
    labels = Query(QUERY).labels(db, [at, pd.Timestamp(at) - pd.Timedelta(days=60)])
    return labels[["customer_id", "cutoff_time"]], labels["label"].to_numpy()


def test_relational_classifier_learns_and_is_an_estimator(db: Database) -> None:
    X, y = _pairs(db, "2022-09-01")
    model = RelationalClassifier(database=db, entity_table="customers", n_estimators=1,
                                 max_depth=1)
    half = len(X) // 2
    proba = model.fit(X.iloc[:half], y[:half]).predict_proba(X.iloc[half:])
    assert proba.shape == (len(X) - half, 2) and model.features_
    assert len(model.features_) <= 100
    copy = clone(model)
    assert copy.database is db and not hasattr(copy, "features_")  # shared, not copied
    piped = make_pipeline(model).fit(X.iloc[:half], y[:half]).predict_proba(X.iloc[half:])
    np.testing.assert_array_equal(piped, proba)
    scores = cross_val_score(model, X, y, cv=2, scoring="roc_auc")
    assert np.all(scores > 0.7), scores
    assert np.array_equal(model.predict(X.iloc[half:half + 5]),
                          model.classes_[proba[:5].argmax(axis=1)])


@pytest.mark.parametrize(("kwargs", "X", "message"), [
    ({"database": None}, None, r"pass database=rdbpfn.Database"),
    ({"entity_table": "shops"}, None, r"entity_table='shops' is not a table"),
    ({}, np.zeros((3, 2)), r"X is a ndarray; pass a DataFrame with columns"),
    ({}, pd.DataFrame({"customer_id": [1]}), r"X lacks the columns \['cutoff_time'\]"),
])
def test_relational_classifier_errors(db: Database, kwargs: dict, X, message: str) -> None:
    arguments = {"database": db, "entity_table": "customers"} | kwargs
    pairs, y = _pairs(db, "2022-09-01")
    with pytest.raises((ValueError, TypeError), match=message):
        RelationalClassifier(**arguments).fit(pairs if X is None else X, y[:len(pairs)])


def test_predict_from_history_alone_never_reads_the_future(db: Database) -> None:
    at = pd.Timestamp("2022-10-01")
    preds = predict(db, QUERY, at, n_estimators=1, max_depth=1, verbose=False)
    exist = Query(QUERY).entities(db, [at])
    assert list(preds.columns) == ["customer_id", "probability"]
    assert preds["customer_id"].tolist() == exist["customer_id"].tolist()
    assert preds["probability"].between(0, 1).all()
    assert "anchor times" in preds.attrs["context"]
    # the same answer from a database cut at `at`: nothing after it was used
    cut = Database({
        "customers": db["customers"],
        "orders": Table(db["orders"].df[db["orders"].df["at"] <= at].reset_index(drop=True),
                        "order_id", {"customer_id": "customers"}, "at"),
    })
    again = predict(cut, QUERY, at, n_estimators=1, max_depth=1, verbose=False)
    pd.testing.assert_frame_equal(preds, again, check_like=False)


def test_anchors_end_their_windows_by_at_and_step_back(db: Database) -> None:
    at = pd.Timestamp("2022-10-01")
    forecast = fit_from_history(db, QUERY, at, n_anchors=3, context_rows=200,
                                n_estimators=1, max_depth=1)
    assert forecast.anchors == [at - pd.Timedelta(days=30 * k) for k in (1, 2, 3)]
    assert len(forecast.context) == 200 and forecast.context["label"].nunique() == 2
    assert forecast.context["cutoff_time"].max() <= at - pd.Timedelta(days=30)


@pytest.mark.parametrize(("query", "at", "message"), [
    (QUERY, "2021-06-01", r"is not after the database's first time"),
    (QUERY, "2022-01-10", r"no anchor time fits"),
    ("PREDICT COUNT(orders.*, 0, 30, days) > 10000 FOR EACH customers.customer_id",
     "2022-10-01", r"has the label 0: history shows no contrast"),
    ("PREDICT COUNT(order.*, 0, 30, days) > 0 FOR EACH customers.customer_id", "2022-10-01",
     r"order"),
    (QUERY, "not a date", r"at='not a date' is not a time"),
])
def test_predict_errors(db: Database, query: str, at: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        predict(db, query, at, n_estimators=1, max_depth=1, verbose=False)


def test_backtest_scores_against_truth_heuristic_and_trees(db: Database, tmp_path) -> None:
    summary = backtest(db, QUERY, ["2022-09-01", "2022-10-15"], out=tmp_path, n_estimators=1,
                       max_depth=1, verbose=False, context_rows=256)
    tree = summary.attrs["tree"]
    assert list(summary["at"]) == ["2022-09-01", "2022-10-15"]
    for column in ("rdbpfn_auc", "heuristic_auc", f"{tree}_auc"):
        assert summary[column].between(0.5, 1.0).all(), summary
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "backtest.csv", "backtest.json", "backtest.md", "backtest.png"]
    assert "mattered most" in (tmp_path / "backtest.md").read_text()
    with pytest.raises(ValueError, match=r"after .* the last time whose label window"):
        backtest(db, QUERY, ["2022-12-30"], verbose=False)


@pytest.mark.parametrize("check", [
    "check_no_attributes_set_in_init", "check_get_params_invariance", "check_set_params",
    "check_parameters_default_constructible", "check_estimator_cloneable",
    "check_estimator_repr", "check_estimator_tags_renamed",
])
@pytest.mark.parametrize("kind", [RelationalClassifier, RelationalRegressor])
def test_scikit_learn_checks_that_apply(db: Database, check: str, kind: type) -> None:
    """The checks that do not feed X as a numeric array (ours is a frame of pairs)."""
    function = getattr(estimator_checks, check)
    function(kind.__name__, kind(database=db, entity_table="customers"))


# ---------------------------------------------------------- balanced yes/no contexts
def test_a_balanced_context_holds_the_rare_answer_up_to_half_and_holds_out_the_rest() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(5000) < 0.04).astype(np.int64)  # 4% yes: ~200 rows
    pool = pd.DataFrame({"id": np.arange(5000), "label": labels})
    context, held = _balanced_sample(pool, 300, np.random.default_rng(1))
    assert len(context) == 300 and context["label"].sum() == int(300 * RARE_SHARE)
    assert len(held) == 300 and not set(held["id"]) & set(context["id"])
    assert context["id"].is_monotonic_increasing  # pool order kept
    # fewer rare rows than half the context: all of them go in, the rest is the other answer
    context, held = _balanced_sample(pool, 1000, np.random.default_rng(1))
    assert context["label"].sum() == labels.sum() and len(context) == 1000
    assert held["label"].sum() == 0
    # the rare answer may be "yes" or "no"
    flipped = pool.assign(label=1 - labels)
    context, _ = _balanced_sample(flipped, 300, np.random.default_rng(1))
    assert (context["label"] == 0).sum() == int(300 * RARE_SHARE)


def test_the_odds_ratio_maps_the_context_rate_to_the_history_rate() -> None:
    calibration = Calibration.odds_ratio(context_rate=0.5, history_rate=0.04)
    assert calibration(np.array([0.5]))[0] == pytest.approx(0.04)
    p = np.array([0.1, 0.3, 0.7, 0.9])
    odds = calibration(p) / (1 - calibration(p))
    np.testing.assert_allclose(odds / (p / (1 - p)), (0.04 / 0.96) / 1.0)


def test_platt_scaling_recovers_a_known_distortion_at_the_history_rate() -> None:
    rng = np.random.default_rng(3)
    raw = rng.uniform(0.02, 0.98, 20_000)
    logit = np.log(raw / (1 - raw))
    truth = 1 / (1 + np.exp(-(2.0 * logit - 1.0)))
    labels = (rng.random(len(raw)) < truth).astype(np.int64)
    fitted = Calibration.fit(raw, labels, history_rate=float(labels.mean()),
                             context_rate=0.5)
    assert fitted.method.startswith("Platt")
    assert fitted.slope == pytest.approx(2.0, abs=0.1)
    assert fitted.intercept == pytest.approx(-1.0, abs=0.1)
    # held-out rows at another rate: weighted so the calibrated mean is the history's rate
    keep = (labels == 0) | (rng.random(len(raw)) < 0.25)
    history_rate = float(labels.mean())
    fitted = Calibration.fit(raw[keep], labels[keep], history_rate, 0.5)
    weights = np.where(labels[keep] == 1, history_rate / labels[keep].sum(),
                       (1 - history_rate) / (labels[keep] == 0).sum())
    assert np.sum(weights * fitted(raw[keep])) == pytest.approx(history_rate, abs=1e-4)


def test_too_few_held_out_rows_fall_back_to_the_odds_ratio() -> None:
    raw = np.linspace(0.1, 0.9, 50)
    labels = np.r_[np.ones(5, np.int64), np.zeros(45, np.int64)]
    fitted = Calibration.fit(raw, labels, history_rate=0.1, context_rate=0.5)
    assert fitted == Calibration.odds_ratio(0.5, 0.1)


def test_a_yes_no_forecast_is_balanced_and_calibrated_to_history(db: Database) -> None:
    forecast = fit_from_history(db, QUERY, "2022-10-01", context_rows=120, n_estimators=1,
                                max_depth=1)
    rate = forecast.positive_rate
    rare = 1 if rate < 0.5 else 0
    assert (forecast.context["label"] == rare).mean() == pytest.approx(0.5, abs=0.01)
    assert forecast.calibration is not None
    assert "history" in forecast.describe()


# ---------------------------------------------------------------- numeric queries
@pytest.fixture(scope="module")
def regression_weights(tmp_path_factory: pytest.TempPathFactory):
    """Tiny random regression weights: the plumbing, not the quality (that is eval's)."""
    return save_random_checkpoint(tmp_path_factory.mktemp("reg") / "r.pt", TINY_REGRESSION)


def test_a_numeric_query_predicts_a_number_and_its_spread(db: Database,
                                                          regression_weights) -> None:
    preds = predict(db, SUM_QUERY, "2022-10-01", n_estimators=2, max_depth=1, verbose=False,
                    model_path=regression_weights)
    assert list(preds.columns) == ["customer_id", "prediction", "std", "median", "low_90",
                                   "high_90"]
    assert len(preds) == 150 and np.isfinite(preds["prediction"]).all()
    assert (preds["std"] > 0).all()
    assert (preds["low_90"] <= preds["median"]).all()
    assert (preds["median"] <= preds["high_90"]).all()
    assert "label mean" in preds.attrs["context"]
    forecast = fit_from_history(db, SUM_QUERY, "2022-10-01", n_anchors=2, n_estimators=1,
                                max_depth=1, model_path=regression_weights)
    assert isinstance(forecast.estimator, RelationalRegressor)
    assert forecast.context["label"].dtype == np.float64


def test_a_sum_query_predicts_the_change_from_the_last_window(
        db: Database, regression_weights) -> None:
    """COUNT and SUM: the models learn label minus the same sum over the 30 days up to each
    row's anchor (checked by hand), one on the rows active in that window and one on the
    idle rows; the prediction adds the 30 days up to ``at`` back. (No linear trend, so that
    the regressors' target means are the changes' means.)"""
    options = {"n_anchors": 2, "n_estimators": 1, "max_depth": 1,
               "model_path": regression_weights, "linear_trend": False}
    relative = fit_from_history(db, SUM_QUERY, "2022-10-01", **options)
    direct = fit_from_history(db, SUM_QUERY, "2022-10-01", relative=False, **options)
    assert relative.relative and not direct.relative and direct.idle is None
    orders = db["orders"].df

    def last_30_days(keys: pd.Series, cutoffs: pd.Series) -> np.ndarray:
        return np.array([orders.loc[(orders["customer_id"] == key)
                                    & (orders["at"] > cutoff - pd.Timedelta(days=30))
                                    & (orders["at"] <= cutoff), "amount"].sum()
                         for key, cutoff in zip(keys, cutoffs, strict=True)])

    context = relative.context
    last = last_30_days(context["customer_id"], context["cutoff_time"])
    np.testing.assert_allclose(context["last_window"], last)
    change = context["label"].to_numpy() - last
    assert relative.idle is not None and (last == 0).sum() >= 32 and (last != 0).sum() >= 32
    assert relative.estimator.regressor_.target_mean_ == pytest.approx(change[last != 0].mean())
    assert relative.idle.regressor_.target_mean_ == pytest.approx(change[last == 0].mean())
    assert direct.estimator.regressor_.target_mean_ == pytest.approx(
        direct.context["label"].mean())
    at = pd.Timestamp("2022-10-01")
    rows = Query(SUM_QUERY).entities(db, [at])
    offset = last_30_days(rows["customer_id"], rows["cutoff_time"])
    numbers = relative.numbers(rows)
    for estimator, mask in ((relative.estimator, offset != 0), (relative.idle, offset == 0)):
        mean = estimator.regressor_.predict(estimator.transform(rows[mask]))
        np.testing.assert_allclose(numbers["prediction"][mask], mean + offset[mask])
    assert "two contexts" in relative.describe()
    with pytest.raises(ValueError, match="COUNT or SUM"):
        fit_from_history(db, "PREDICT AVG(orders.amount, 0, 30, days) FOR EACH "
                         "customers.customer_id", "2022-10-01", relative=True, **options)


def test_idle_entities_that_never_come_back_keep_their_last_window(regression_weights
                                                                  ) -> None:
    """A shop whose customers either order every few days or stopped for good: every idle
    row of the history changed by 0, so idle entities are predicted 0 with no spread (no
    model is fitted on a constant), and the active ones by their own model."""
    rng = np.random.default_rng(1)
    rows = [(customer, START + pd.Timedelta(days=int(day)), float(rng.gamma(2, 20)))
            for customer in range(80)
            for day in (rng.integers(1, 20, 1) if customer % 2 else np.arange(0, 360, 7))]
    orders = pd.DataFrame(rows, columns=["customer_id", "at", "amount"])
    orders.insert(0, "order_id", np.arange(len(orders)))
    customers = pd.DataFrame({"customer_id": np.arange(80), "signup": START})
    shop_db = Database({
        "customers": Table(customers, "customer_id", time_column="signup"),
        "orders": Table(orders, "order_id", {"customer_id": "customers"}, "at"),
    })
    forecast = fit_from_history(shop_db, SUM_QUERY, "2022-11-01", n_anchors=4, n_estimators=1,
                                max_depth=1, model_path=regression_weights)
    assert forecast.idle == 0.0 and "changed by 0" in forecast.describe()
    at = pd.Timestamp("2022-11-01")
    numbers = forecast.numbers(Query(SUM_QUERY).entities(shop_db, [at]))
    stopped = np.arange(80) % 2 == 1
    for column in ("prediction", "median", "std", "low_90", "high_90"):
        assert (numbers[column][stopped] == 0).all()
    assert (numbers["std"][~stopped] > 0).all()


def test_backtest_of_a_numeric_query(db: Database, regression_weights, tmp_path) -> None:
    """MAE, R^2 and 90% coverage against the truth; the heuristic is the same sum over the
    last 30 days, checked by hand."""
    summary = backtest(db, SUM_QUERY, ["2022-09-01"], out=tmp_path, n_estimators=1,
                       max_depth=1, verbose=False, context_rows=256,
                       model_path=regression_weights)
    tree = summary.attrs["tree"]
    for column in ("rdbpfn_mae", "rdbpfn_median_mae", "heuristic_mae", f"{tree}_mae",
                   "rdbpfn_r2", "heuristic_r2", "rdbpfn_coverage_90"):
        assert np.isfinite(summary[column]).all(), summary
    assert summary["rdbpfn_coverage_90"].between(0, 1).all()
    at = pd.Timestamp("2022-09-01")
    truth = Query(SUM_QUERY).labels(db, [at])
    orders = db["orders"].df
    last = orders[(orders["at"] > at - pd.Timedelta(days=30)) & (orders["at"] <= at)]
    guess = truth["customer_id"].map(last.groupby("customer_id")["amount"].sum()).fillna(0)
    assert summary["heuristic_mae"].iloc[0] == pytest.approx(
        np.mean(np.abs(truth["label"] - guess)))
    assert (tmp_path / "backtest.png").is_file()


def test_relational_regressor_is_an_estimator(db: Database, regression_weights) -> None:
    labels = Query(SUM_QUERY).labels(db, ["2022-09-01", "2022-07-01"])
    X, y = labels[["customer_id", "cutoff_time"]], labels["label"].to_numpy()
    model = RelationalRegressor(database=db, entity_table="customers", n_estimators=1,
                                max_depth=1, model_path=regression_weights)
    fitted = clone(model).fit(X[:150], y[:150])
    mean, std = fitted.predict(X[150:], return_std=True)
    assert mean.shape == std.shape == (len(X) - 150,)
    quantiles = fitted.predict_quantiles(X[150:], (0.1, 0.9))
    assert (quantiles[:, 0] <= quantiles[:, 1]).all()
    assert fitted.features_ and clone(model).database is db
    with pytest.raises(ValueError, match="must be numbers"):
        clone(model).fit(X[:10], np.array(["a", "b"] * 5))


def test_a_relational_regressor_keeps_fewer_columns_by_default(
        db: Database, regression_weights, monkeypatch: pytest.MonkeyPatch) -> None:
    """``max_features=None``: at most 24 columns for numbers (this small database has
    fewer), the model's width when asked; a smaller default keeps fewer of the same."""
    labels = Query(SUM_QUERY).labels(db, ["2022-09-01", "2022-07-01"])
    X, y = labels[["customer_id", "cutoff_time"]], labels["label"].to_numpy()
    options = {"database": db, "entity_table": "customers", "n_estimators": 1,
               "model_path": regression_weights}
    wide = RelationalRegressor(max_features=100, **options).fit(X, y).features_
    assert 6 < len(wide) <= 24
    assert RelationalRegressor(**options).fit(X, y).features_ == wide
    monkeypatch.setattr(RelationalRegressor, "_default_width", 6)
    narrow = RelationalRegressor(**options).fit(X, y).features_
    assert len(narrow) == 6 and set(narrow) <= set(wide)
