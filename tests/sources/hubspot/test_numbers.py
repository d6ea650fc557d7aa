"""HubSpot numbers sent as JSON numbers (not HubSpot's usual strings) reach the typing step unrounded."""

from __future__ import annotations

from decimal import Decimal

import pytest
from requests import Response

from sources.hubspot.client import HubSpotApi, _json
from sources.hubspot.schema import typed_value

# More digits than a double holds: json's float parsing made this 0.1 (and 0.1 loaded, exactly wrong).
LONG = "0.1000000000000000055511151231257827"
BODY = (
    '{"results": [{"id": "7", "properties": {"amount": ' + LONG + ', "score": 12.5, '
    '"big": 12345678901234567891}}], "paging": {}}'
)


def _response(body: str) -> Response:
    # A real requests Response, as the session returns it, holding a body HubSpot could send.
    response = Response()
    response.status_code = 200
    response._content = body.encode()
    response.encoding = "utf-8"
    return response


def test_pages_and_single_answers_keep_every_digit() -> None:
    api = HubSpotApi("http://127.0.0.1:9", "token")
    (contact,) = api.client.extract_response(_response(BODY), "results")
    properties = contact["properties"]
    assert properties["amount"] == Decimal(LONG)
    assert properties["score"] == Decimal("12.5")
    assert properties["big"] == 12345678901234567891
    assert _json("GET", "x", _response(BODY))["results"][0]["properties"]["amount"] == Decimal(LONG)


def test_a_number_sent_as_a_json_number_is_typed_like_the_string_form() -> None:
    api = HubSpotApi("http://127.0.0.1:9", "token")
    (contact,) = api.client.extract_response(_response(BODY), "results")
    properties = contact["properties"]
    assert typed_value(properties["score"], "decimal") == Decimal("12.5")
    # Too many fractional digits for DECIMAL(38,18): refused by the typing step (the value then
    # loads unchanged as text in the variant column, as for the string form), never rounded.
    with pytest.raises(ValueError, match=LONG):
        typed_value(properties["amount"], "decimal")
    assert typed_value(properties["amount"], "text") == LONG
