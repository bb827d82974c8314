"""No secret in any log line: our station connects to our CSMS with Basic auth while every logger of the process
logs at DEBUG (websockets prints each handshake header and frame there); a wrong password is tried, and the CSMS
rotates the station's password with SetVariables and the station reconnects with it. Then the redaction itself, on
the kinds of text it must mask."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.csms import PASSWORD, csms_url, our_station, running_csms
from helpers.wait import until

from v2gstack.ocpp import HandshakeRefused, Router, StationClient
from v2gstack.ocpp.redact import RedactingFilter, redact

NEW_PASSWORD = "rotated-password-000042"
WRONG = "wrong-password-00000077"


class Everything(logging.Handler):
    """Keeps every record of every logger, formatted as a log file would show it (with tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Format and keep."""
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[Everything]:
    """The root logger at DEBUG with a handler that sees what any logger writes."""
    root = logging.getLogger()
    handler = Everything()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def secrets_of(station_id: str, *passwords: str) -> list[str]:
    """The ways a password could show up: as is, and in the Basic auth header (base64 of id:password)."""
    out = []
    for pw in passwords:
        out += [pw, base64.b64encode(f"{station_id}:{pw}".encode()).decode()]
    return out


async def test_no_password_in_any_log_line_at_debug(tmp_path: Path, all_logs: Everything) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, our_station(csms, password=PASSWORD) as st:
        await st.wait_accepted()
        with pytest.raises(HandshakeRefused):  # our client, with a wrong password
            await StationClient(csms_url(csms), "CS1", Router(), password=WRONG, ping_interval=None).connect()
        answer = await csms.call("CS1", "SetVariables", {"setVariableData": [{
            "attributeValue": NEW_PASSWORD, "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"}}]})
        assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
        csms.store.set_station_password("CS1", NEW_PASSWORD)
        connects = st.link.client.connects
        await csms.server.connections["CS1"].close(1000, "reconnect with the new password")
        await until(lambda: st.link.client.connects > connects and csms.online("CS1"))
        await st.wait_accepted()
    text = "\n".join(all_logs.lines)
    # the handshakes were logged at DEBUG, with the header masked (else this test would prove nothing)
    assert "Authorization: [redacted]" in text
    assert any("SetVariables" in line for line in all_logs.lines)
    for secret in secrets_of("CS1", PASSWORD, NEW_PASSWORD, WRONG):
        leaks = [line for line in all_logs.lines if secret in line]
        assert not leaks, leaks[:3]
    assert "PRIVATE KEY" not in text


@pytest.mark.parametrize(("text", "secret"), [
    ("> Authorization: Basic Q1MxOnN0YXRpb24tcGFzc3dvcmQ=", "Q1MxOnN0YXRpb24tcGFzc3dvcmQ="),
    ("< authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0", "eyJhbGciOi"),
    ("GET /api/stations Authorization=Token abcdef0123456789", "abcdef0123456789"),
    ("calling with bearer sk_live_0123456789abcdef", "sk_live_0123456789abcdef"),
    ("x-api-key: k-0123456789", "k-0123456789"),
    ("body {'password': 'hunter2-hunter2', 'id': 'CS1'}", "hunter2-hunter2"),
    ('{"apiKey":"AKIA0123456789","token":"t-987654321"}', "AKIA0123456789"),
    ('{"apiKey":"AKIA0123456789","token":"t-987654321"}', "t-987654321"),
    ("key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----", "MHcCAQEEIBkg"),
    ("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG (cut)", "MIGHAgEAMBMG"),
    ("> TEXT '[2,\"a\",\"SetVariables\",{\"setVariableData\":[{\"attributeValue\":\"s3cret-value-123\"...' [9 bytes]",
     "s3cret-value-123"),
    ('[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"0011223344556677"}]', "0011223344556677"),
])
def test_redaction_masks(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_redaction_keeps_ordinary_lines_and_masks_records() -> None:
    for line in ("station CS1 connected (ocpp2.0.1)", '{"idToken":{"idToken":"04A1B2C3","type":"ISO14443"}}',
                 '[2,"m","MeterValues",{"meterValue":[{"sampledValue":[{"value":12.5}]}]}]'):
        assert redact(line) == line
    record = logging.LogRecord("websockets", logging.DEBUG, __file__, 1, "> %s: %s",
                               ("Authorization", "Basic Q1MxOnB3"), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "> Authorization: [redacted]"


def test_the_look_for_secret_words_skips_only_texts_nothing_would_mask() -> None:
    """redact's first look (no secret word: the text as it is) never changes what the substitutions give: every
    word each pattern needs, in upper, lower and mixed case, inside OCPP frames and headers, and texts that only a
    non-ASCII letter matching case-insensitively (U+0130, U+0131, U+017F) makes a secret, all masked as before; a
    V2X setpoint's CALL and its answer come back as the same object."""
    from v2gstack.ocpp.redact import _masked
    values = ["Authorization: Basic c3RhdGlvbjpzZWNyZXQ=", "Cookie: session=abc123def", "Set-Cookie: a=b",
              "X-API-Key: k-0123456789", "bearer abcdef123456", "Digest abcdef123456", "TOKEN zyxwvu987654",
              '{"password": "hunter2"}', '{"passwd":"x"}', '{"basicAuthPassword": "p"}', '{"clientSecret": "s"}',
              '{"apiKey": "k"}', '{"api_key": "k"}', '{"apiToken": "t"}', '{"refresh_token": "t"}',
              '{"authorizationKey": "a"}', '[2,"1","SetVariables",{"setVariableData":[{"attributeValue":"v"}]}]',
              '[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"0011"}]',
              "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----",
              '{"pa\u017fsword": "x"}', '{"\u0130 token": 1}', "author\u0131zation: x", "auth\u0130rization: y"]
    from v2gstack.ocpp import redact as module  # every name the patterns are built from, as each pattern uses it
    forms = [[f'{{"{name}": "s3cret-value"}}'] for name in module._SECRET_FIELDS]
    forms += [[f"{name}: abcdef123456", f"{name} abcdef123456"] for name in (*module._HEADERS, *module._SCHEMES)]
    forms += [[f'[2,"1","{name}",{{"value":"0011"}}]'] for name in module._SECRET_SETTERS]
    for texts in forms:
        assert any(redact(text) != text for text in texts), texts  # the first look lets each name through
        values += texts
    for value in values:
        for text in (value, value.upper(), value.lower(), value.swapcase()):
            assert redact(text) == _masked(text), text
    setpoint = ('[2,"3f9c2a7e-1b2c-4d5e-8f90-123456789abc","UpdateDynamicSchedule",{"chargingProfileId":12,'
                '"scheduleUpdate":{"limit":11000.0,"setpoint":-3456.0,"dischargeLimit":-11000.0}}]')
    for text in (setpoint, '[3,"3f9c2a7e-1b2c-4d5e-8f90-123456789abc",{"status":"Accepted"}]'):
        assert redact(text) is text and _masked(text) == text
