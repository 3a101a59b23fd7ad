"""The simulator keeps the wire contract of API_CONTRACT.md, hostile parts included."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sitoo_sync.simulator import SimConfig, Simulator


@pytest.fixture
def api(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(auth=(sim.api_id, sim.password), timeout=10) as client:
        yield client


def test_every_route_wants_basic_auth(sim: Simulator) -> None:
    """Wrong or missing credentials get 401 with the vendor's error body."""
    for auth in (None, ("1500-1", "wrong")):
        response = httpx.get(f"{sim.v2_url}/pos-z-reports", auth=auth)
        assert response.status_code == 401
        assert response.json() == {"statuscode": 401, "errortext": "Authorization failed"}


def test_cash_registers_page_with_start_num_and_totalcount(
    sim: Simulator, api: httpx.Client
) -> None:
    """start/num pages to totalcount; unregistered registers only when asked for."""
    url = f"{sim.v2_url}/sites/1/cashregisters.json"
    everything = api.get(url, params={"includenotregistered": "true", "num": 100}).json()
    seen: list[dict[str, Any]] = []
    start = 0
    while True:
        page = api.get(
            url, params={"includenotregistered": "true", "start": start, "num": 3}
        ).json()
        assert page["totalcount"] == everything["totalcount"]
        seen += page["items"]
        start += len(page["items"])
        if not page["items"] or start >= page["totalcount"]:
            break
    assert [r["registerid"] for r in seen] == [r["registerid"] for r in everything["items"]]
    registered = api.get(url, params={"num": 100}).json()
    assert registered["totalcount"] == everything["totalcount"] - 1  # one never registered
    assert all(r["registerkey"] for r in registered["items"])


def test_pos_z_reports_are_ascending_capped_and_inclusive() -> None:
    """A bare array, ascending dateadded, at most 500, both bounds inclusive."""
    with Simulator.create(SimConfig(seed=2, days=60)) as big:
        url = f"{big.v2_url}/pos-z-reports"
        with httpx.Client(auth=(big.api_id, big.password)) as client:
            page = client.get(url, params={"dateaddedfrom": 0}).json()
            assert isinstance(page, list)
            assert len(page) == 500
            times = [r["dateadded"] for r in page]
            assert times == sorted(times)
            t = times[10]
            exact = client.get(url, params={"dateaddedfrom": t, "dateaddedto": t}).json()
            assert exact
            assert {r["dateadded"] for r in exact} == {t}
            one = exact[0]
            single = client.get(f"{url}/{one['registerid']}/{one['zreportid']}").json()
            assert single == one


def test_same_second_order_changes_between_calls(sim: Simulator, api: httpx.Client) -> None:
    """Reports sharing a second come back in no fixed order, as the contract allows."""
    at = sim.world.advance_clock(10)
    sim.world.add_burst(40, at=at)
    url = f"{sim.v2_url}/pos-z-reports"
    orders = {
        tuple(r["zreportid"] for r in api.get(url, params={"dateaddedfrom": at}).json())
        for _ in range(5)
    }
    assert len(orders) > 1


def test_journal_entries_page_with_next_until_it_is_absent(
    sim: Simulator, api: httpx.Client
) -> None:
    """`next` pages through every entry of a register once; register_id is required."""
    url = f"{sim.journals_url}/journal-entries"
    register = sim.world.registers[0].registerid
    params: dict[str, Any] = {"register_id": register, "date_type": "added", "num": 7}
    ids: list[int] = []
    while True:
        page = api.get(url, params=params).json()
        ids += [e["id"] for e in page["items"]]
        if not page.get("next"):
            break
        params["next"] = page["next"]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids)) > 7
    assert api.get(url, params={"num": 5}).status_code == 400
    bad = api.get(url, params={"register_id": register, "next": "nonsense"})
    assert bad.status_code == 400


def test_store_config_and_day_filter(sim: Simulator, api: httpx.Client) -> None:
    """The config names hour and zone; without a day at most 100 come back, newest first."""
    config = api.get(f"{sim.v2_url}/store-z-reports/config").json()
    assert config == {
        "aggregation_active": True,
        "hour_of_day": 22,
        "time_zone": "Europe/Stockholm",
    }
    newest = api.get(f"{sim.v2_url}/store-z-reports").json()
    days = [r["day_created"] for r in newest]
    assert days == sorted(days, reverse=True)
    assert len(newest) <= 100
    one_day = api.get(f"{sim.v2_url}/store-z-reports", params={"day": days[-1]}).json()
    assert {r["day_created"] for r in one_day} == {days[-1]}
    sim.world.aggregation = "missing"
    assert api.get(f"{sim.v2_url}/store-z-reports/config").status_code == 404
    sim.world.aggregation = "inactive"
    assert api.get(f"{sim.v2_url}/store-z-reports/config").json()["aggregation_active"] is False


def test_scripted_faults_happen_in_order(sim: Simulator, api: httpx.Client) -> None:
    """Queued faults hit the next matching requests, then the API answers normally."""
    url = f"{sim.v2_url}/pos-z-reports"
    sim.faults.queue("429", retry_after=3, path="/pos-z-reports", after=1)
    sim.faults.queue("503", path="/pos-z-reports")
    assert api.get(url).status_code == 200
    first = api.get(url)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    unavailable = api.get(url)
    assert unavailable.status_code == 503
    assert "Service Unavailable" in unavailable.text  # each status its own reason text
    assert api.get(url).status_code == 200
    sim.faults.queue("drop", path="/pos-z-reports")
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(url)


def test_a_slow_answer_is_held_for_its_seconds_or_until_a_release(
    sim: Simulator, api: httpx.Client
) -> None:
    """A `slow` fault holds its answer for its seconds; `release` answers a held one at once,
    and a slow fault queued after it holds its request for its seconds again."""
    url = f"{sim.v2_url}/store-z-reports/config"
    sim.faults.queue("slow", path="/store-z-reports", seconds=0.3)
    started = time.monotonic()
    assert api.get(url).status_code == 200
    assert time.monotonic() - started >= 0.3

    sim.faults.queue("slow", path="/store-z-reports", seconds=120.0)
    answers: list[int] = []

    def ask() -> None:
        with httpx.Client(auth=(sim.api_id, sim.password), timeout=60) as own:
            answers.append(own.get(url).status_code)

    asking = threading.Thread(target=ask)
    started = time.monotonic()
    asking.start()
    deadline = started + 30
    while sim.in_flight == 0:  # the request is being held
        assert time.monotonic() < deadline, "the request never reached the simulator"
        time.sleep(0.01)
    sim.faults.release()
    asking.join(timeout=30)
    assert answers == [200]
    assert time.monotonic() - started < 30

    sim.faults.queue("slow", path="/store-z-reports", seconds=0.3)
    started = time.monotonic()
    assert api.get(url).status_code == 200
    assert time.monotonic() - started >= 0.3
