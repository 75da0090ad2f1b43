"""Converters and record maps turn legacy and partner formats into clean values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sources import mapping as m
from sources.crosswalk import normalise_erp_number
from sources.erp import ORDER_MAP, customer_key, item_key
from sources.errors import MappingError, UpstreamBadResponse
from sources.values import Money, OrderStatus


@pytest.mark.parametrize(("raw", "clean"), [("  100001", "100001"), ("ACME CORP      ", "ACME CORP"),
                                            ("        ", None), (None, None)])
def test_strip_trims_char_padding(raw: str | None, clean: str | None) -> None:
    assert m.strip(raw) == clean


def test_text_requires_a_value() -> None:
    with pytest.raises(MappingError):
        m.text("     ")


@pytest.mark.parametrize(("raw", "expected"), [
    (1241124, date(2024, 11, 24)), (991231, date(1999, 12, 31)), (1000101, date(2000, 1, 1)),
    ("1261124", date(2026, 11, 24)),
])
def test_cyymmdd(raw: int | str, expected: date) -> None:
    assert m.cyymmdd(raw) == expected
    assert m.to_cyymmdd(expected) == int(raw)


@pytest.mark.parametrize("bad", [1241332, 1240230, "abc", None, True])
def test_cyymmdd_rejects_impossible_dates(bad: object) -> None:
    with pytest.raises(MappingError):
        m.cyymmdd(bad)


def test_money_from_cents_is_exact() -> None:
    assert m.money_cents(1317182, "usd") == Money(Decimal("13171.82"), "USD")
    assert m.money_cents(5, "EUR").amount == Decimal("0.05")


@pytest.mark.parametrize("bad", ["12,50", "NaN", "Infinity", 12.5, None])
def test_money_decimal_refuses_floats_and_junk(bad: object) -> None:
    with pytest.raises(MappingError):
        m.money_decimal(bad, "USD")


@pytest.mark.parametrize(("raw", "e164"), [
    ("3129044625", "+13129044625"), ("13129044625", "+13129044625"), ("+1 (312) 904-4625", "+13129044625"),
    ("312.904.4625", "+13129044625"), ("1-312-904-4625", "+13129044625"), ("", None), ("12", None), (None, None),
])
def test_phone_to_e164(raw: str | None, e164: str | None) -> None:
    assert m.phone("US")(raw) == e164


def test_email_is_lower_cased_and_checked() -> None:
    assert m.email("  RiCHarD.OkaFoR@LakEsideMotor.com ") == "richard.okafor@lakesidemotor.com"
    with pytest.raises(MappingError):
        m.email("not-an-address")


def test_code_maps_and_rejects_unknown_codes() -> None:
    convert = m.code(OrderStatus, {"O": OrderStatus.OPEN})
    assert convert("O ") is OrderStatus.OPEN
    with pytest.raises(MappingError):
        convert("Z")


def test_epoch_and_iso_times_are_utc() -> None:
    assert m.epoch_seconds(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert m.iso_datetime("2026-11-24T10:00:00Z") == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert m.iso_datetime("2026-11-24T10:00:00").tzinfo == UTC


def test_title_text_keeps_codes() -> None:
    assert m.title_text("BEARING 6204 2RS   ") == "Bearing 6204 2RS"


def test_record_map_reads_dotted_paths_and_defaults() -> None:
    @dataclass(frozen=True)
    class Person:
        first: str
        city: str | None

    person_map = m.RecordMap(Person, {"first": m.Field("name.first", m.text),
                                      "city": m.Field("address.city", m.strip, default=None)})
    assert person_map.convert({"name": {"first": " Ann "}}) == Person("Ann", None)
    with pytest.raises(MappingError):
        person_map.convert({"address": {}})


def test_order_map_on_a_legacy_row() -> None:
    row = {"OHORNO": 5000001, "OHCUNO": "  101074", "OHORDT": 1231125, "OHSTAT": "I", "OHTOTL": 12345,
           "OHCURR": "USD", "OHWHSE": "DAL"}
    order = ORDER_MAP.apply(row, source="erp")
    assert (order.customer, order.placed, order.status) == ("101074", date(2023, 11, 25), OrderStatus.INVOICED)
    assert order.total == Money(Decimal("123.45"), "USD")


def test_bad_upstream_row_is_an_upstream_bad_response() -> None:
    row = {"OHORNO": 1, "OHCUNO": "1", "OHORDT": 1231125, "OHSTAT": "?", "OHTOTL": 1, "OHCURR": "USD",
           "OHWHSE": None}
    with pytest.raises(UpstreamBadResponse) as caught:
        ORDER_MAP.apply(row, source="erp")
    assert caught.value.code == "UPSTREAM_BAD_RESPONSE" and "ErpOrder.status" in str(caught.value)


def test_legacy_keys_are_padded_like_the_erp_stores_them() -> None:
    assert customer_key("100001") == "  100001"
    assert item_key("BRG00001") == "BRG00001       "


@pytest.mark.parametrize(("raw", "number"), [
    ("100001", "100001"), ("C-100001", "100001"), ("0100001", "100001"), ("100 001", "100001"),
    (" 100001 ", "100001"), (None, None), ("n/a", None), ("000", None),
])
def test_crosswalk_normalises_typed_erp_numbers(raw: str | None, number: str | None) -> None:
    assert normalise_erp_number(raw) == number
