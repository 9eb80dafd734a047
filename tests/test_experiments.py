"""Outcomes reported for requests (``POST /v1/feedback``), attributed to the version that
answered, and the experiment's statistics: fixed samples with known answers, then the
real gateway in front of the real classifier's two versions."""

from __future__ import annotations

import csv
import io

import httpx
import numpy as np
import pytest

from gateway.experiments.statistics import results, t_interval, wilson
from switchyard.cli.experiments import format_results
from switchyard.redis_server import LocalRedis
from tests.conftest import make_key
from tests.support import GatewayProcess

pytestmark = pytest.mark.timeout(300)


def test_the_wilson_interval_of_8_in_10() -> None:
    # z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71671, half-width
    # 1.96 * sqrt(0.016 + 0.0096040) / 1.38416 = 0.22661: (0.4902, 0.9433).
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_the_t_interval_of_a_mean() -> None:
    # Mean 3, standard error sqrt(2.5 / 5) = 0.7071; t(0.975, 4) = 2.7764: 3 -/+ 1.9632.
    low, high = t_interval(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert low == pytest.approx(1.0368, abs=1e-4)
    assert high == pytest.approx(4.9632, abs=1e-4)


def test_rates_differ_only_when_there_is_enough_to_tell() -> None:
    few = results({"v1": [True] * 9 + [False], "v2": [True] * 5 + [False] * 5}, "v1")
    assert few[1].comparison is None and few[1].note.startswith("too few to tell")
    # 90/100 against 50/100: pooled 0.7, z = 0.4 / sqrt(0.21 * 0.02) = 6.172, p = 6.7e-10.
    many = {"v1": [True] * 90 + [False] * 10, "v2": [True] * 50 + [False] * 50}
    base, other = results(many, "v1")
    assert base.baseline and base.comparison is None
    assert other.comparison is not None
    assert other.comparison.statistic == pytest.approx(-6.172, abs=1e-3)
    assert other.comparison.p_value == pytest.approx(6.7e-10, rel=0.05)
    assert other.note.startswith("differs from the baseline")


def test_numbers_and_labels_are_compared_by_their_own_tests() -> None:
    same = [float(x % 5) for x in range(40)]
    found = results({"v1": same + ["good"] * 10, "v2": same + ["good"] * 10}, "v1")
    kinds = [(r.version, r.kind) for r in found]
    assert kinds == [("v1", "mean"), ("v2", "mean"), ("v1", "labels"), ("v2", "labels")]
    number = found[1]
    assert number.comparison is not None and number.comparison.test == "Mann-Whitney U"
    assert number.comparison.p_value == pytest.approx(1.0)
    assert found[3].shares == {"good": 1.0} and found[3].comparison is None


def test_outcomes_reported_through_the_gateway_compare_the_versions(
    gateway: GatewayProcess, redis_server: LocalRedis, admin_key: str
) -> None:
    caller = make_key(redis_server.url, "client", "enterprise")
    stranger = make_key(redis_server.url, "client", "enterprise")
    with httpx.Client(base_url=gateway.url, timeout=60) as http:

        def answer(version: str) -> str:
            reply = http.post(
                "/v1/classify",
                json={"text": "a fine film"},
                headers={"X-API-Key": caller, "X-Model-Version": version},
            )
            assert reply.status_code == 200, reply.text
            return reply.headers["x-request-id"]

        def report(request_id: str, value: object, key: str = caller) -> httpx.Response:
            body = {"request_id": request_id, "value": value}
            return http.post("/v1/feedback", json=body, headers={"X-API-Key": key})

        for n in range(30):
            assert report(answer("v1"), n % 5 != 0).json()["version"] == "v1"  # 24 of 30
            assert report(answer("v2"), n % 2 == 0).json()["version"] == "v2"  # 15 of 30
        request_id = answer("v2")
        assert report(request_id, False).status_code == 200
        assert report(request_id, True).status_code == 200, "a second report replaces it"
        assert report(request_id, True, key=stranger).status_code == 404, "not their request"
        assert report("no-such-request", True).status_code == 404
        assert report(request_id, {"x": 1}).status_code == 400

        admin = {"X-API-Key": admin_key}
        found = http.get("/v1/admin/experiments/sentiment", headers=admin).json()
        table = http.get("/v1/admin/experiments/sentiment?format=csv", headers=admin)
    assert found["baseline"] == "v1"
    rates = {r["version"]: r for r in found["results"] if r["kind"] == "rate"}
    assert (rates["v1"]["n"], rates["v2"]["n"]) == (30, 31)
    assert rates["v1"]["estimate"] == pytest.approx(0.8)
    assert rates["v2"]["estimate"] == pytest.approx(16 / 31)
    assert rates["v2"]["comparison"]["test"] == "two-proportion z"
    assert rates["v2"]["note"].startswith("differs from the baseline"), rates["v2"]  # p=0.02
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert {(r["version"], r["kind"], r["n"]) for r in rows} >= {("v1", "rate", "30")}


def test_the_results_table_reads_each_version_against_the_baseline() -> None:
    found = {
        "model": "sentiment",
        "baseline": "v1",
        "results": [
            {"version": "v1", "kind": "rate", "n": 30, "estimate": 0.8, "low": 0.627,
             "high": 0.905, "shares": {}, "baseline": True, "comparison": None,
             "note": "the baseline the others are compared with"},
            {"version": "v2", "kind": "rate", "n": 31, "estimate": 0.516, "low": 0.349,
             "high": 0.680, "shares": {}, "baseline": False,
             "comparison": {"test": "two-proportion z", "statistic": -2.33, "p_value": 0.0197},
             "note": "differs from the baseline (p=0.0197 < 0.05)"},
        ],
    }  # fmt: skip
    table = format_results(found).splitlines()
    assert table[0] == "sentiment: compared with v1"
    assert "80.0% (62.7%-90.5%)" in table[2]
    assert "two-proportion z -2.33: differs from the baseline (p=0.0197 < 0.05)" in table[3]
