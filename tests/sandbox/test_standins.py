"""One registration path: every pipeline's stand-in is a module of `sandbox/standins`, and the
sandbox is built from that registry alone."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
import requests

from sandbox import Sandbox
from sandbox.base import StandIn
from sandbox.hubspot import HubSpotServer
from sandbox.postgres import to_libpq_url
from sandbox.standins import registered
from utils.check import pipeline_names


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(products=200, hubspot=100) as running:
        yield running


def test_every_pipeline_registers_its_stand_in_the_same_way() -> None:
    factories = registered()

    assert sorted(factories) == pipeline_names()
    assert all(issubclass(factory, StandIn) for factory in factories.values())


def test_the_sandbox_runs_every_registered_stand_in_and_nothing_else(sandbox: Sandbox) -> None:
    assert list(sandbox.standins) == sorted(registered())
    assert all(standin.running for standin in sandbox.standins.values())
    assert sandbox.postgres.running


def test_env_is_the_union_of_the_stand_ins_settings(sandbox: Sandbox) -> None:
    env = sandbox.env()

    assert env == {k: v for s in sandbox.standins.values() for k, v in s.env().items()}
    for name in sandbox.standins:
        assert any(key.startswith(f"SOURCES__{name.upper()}__") for key in env), name
    contacts = requests.get(
        env["SOURCES__HUBSPOT__BASE_URL"] + "/crm/v3/objects/contacts",
        headers={"Authorization": f"Bearer {env['SOURCES__HUBSPOT__ACCESS_TOKEN']}"},
        timeout=10,
    )
    assert contacts.status_code == 200
    credentials = {
        key.removeprefix("SOURCES__PRODUCTS__CREDENTIALS__").lower(): value
        for key, value in env.items()
        if key.startswith("SOURCES__PRODUCTS__CREDENTIALS__")
    }
    with (
        psycopg2.connect(
            host=credentials["host"],
            port=credentials["port"],
            user=credentials["username"],
            password=credentials["password"],
            dbname=credentials["database"],
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("select count(*) from products")
        assert cur.fetchone() == (200,)


def test_simulated_activity_reaches_every_stand_in(sandbox: Sandbox) -> None:
    hubspot = sandbox.standins["hubspot"]
    assert isinstance(hubspot, HubSpotServer)
    before_contacts = len(hubspot.snapshot())
    with psycopg2.connect(to_libpq_url(sandbox.postgres.dsn)) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from products")
        before_products = cur.fetchone()

        sandbox.simulate_activity()

        cur.execute("select count(*) from products")
        after_products = cur.fetchone()
    assert len(hubspot.snapshot()) > before_contacts
    assert after_products != before_products


def test_stop_stops_every_stand_in_and_the_shared_server() -> None:
    sandbox = Sandbox(products=10, hubspot=5).start()
    standins = list(sandbox.standins.values())

    sandbox.stop()
    sandbox.stop()

    assert not any(standin.running for standin in standins)
    assert not sandbox.postgres.running
