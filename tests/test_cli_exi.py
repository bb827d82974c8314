"""`v2gstack exi decode|encode` through the installed console script, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from v2gstack import exi

SCRIPT = Path(sys.executable).parent / ("v2gstack.exe" if os.name == "nt" else "v2gstack")
pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="the v2gstack console script is not installed")

DIN_HEX = "809a004011d01b486c1104ec3c00"
DIN_DOC = {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"SessionSetupReq": {"EVCCID": "D21B04413B0F"}}}}
# xmldsig SignedInfo fragment, encoded by the codec itself (the CLI must agree with the library)
SIGNED_INFO = {"SignedInfo": {
    "CanonicalizationMethod": {"Algorithm": "http://www.w3.org/TR/canonical-exi/"},
    "SignatureMethod": {"Algorithm": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
    "Reference": [{"URI": "#id1", "Transforms": {"Transform": [{"Algorithm": "http://www.w3.org/TR/canonical-exi/"}]},
                   "DigestMethod": {"Algorithm": "http://www.w3.org/2001/04/xmlenc#sha256"},
                   "DigestValue": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}]}}


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(SCRIPT), "exi", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=env)


def assert_clean_failure(p: subprocess.CompletedProcess, code: int | None, *needles: str) -> None:
    assert p.returncode != 0 if code is None else p.returncode == code, (p.returncode, p.stderr)
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr


def test_decode_hex_argument():
    p = cli("decode", "--ns", "din", DIN_HEX)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == DIN_DOC
    assert p.stdout.count("\n") > 5  # indented by default


def test_decode_compact_and_from_stdin_with_whitespace():
    p = cli("decode", "--ns", "din", "--compact", "-", stdin=f"  {DIN_HEX[:10]}\n {DIN_HEX[10:].upper()}\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == json.dumps(DIN_DOC, separators=(",", ":"))


def test_encode_json_from_stdin():
    p = cli("encode", "--ns", "din", "-", stdin=json.dumps(DIN_DOC))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == DIN_HEX


def test_encode_json_argument():
    p = cli("encode", "--ns", "din", json.dumps(DIN_DOC))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == DIN_HEX


def test_fragment_round_trip():
    expected = exi.encode("xmldsig", SIGNED_INFO, fragment=True).hex()
    p = cli("encode", "--ns", "xmldsig", "--fragment", "-", stdin=json.dumps(SIGNED_INFO))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == expected
    p = cli("decode", "--ns", "xmldsig", "--fragment", expected)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == SIGNED_INFO
    p = cli("decode", "--ns", "xmldsig", expected)  # the same bytes read as a document are something else
    assert p.returncode != 0 or json.loads(p.stdout) != SIGNED_INFO


def test_decode_non_hex():
    p = cli("decode", "--ns", "din", "80zz")
    assert_clean_failure(p, None, "error:", "not hex")


def test_encode_non_json():
    p = cli("encode", "--ns", "din", "-", stdin="{V2G_Message: ")
    assert_clean_failure(p, None, "error:", "not JSON")


def test_encode_schema_violation_names_the_path():
    doc = json.loads(json.dumps(DIN_DOC))
    doc["V2G_Message"]["Body"]["SessionSetupReq"]["EVCCID"] = "D21B04413B0F00112233"  # 10 bytes, max 8
    p = cli("encode", "--ns", "din", "-", stdin=json.dumps(doc))
    assert_clean_failure(p, 1, "error: V2G_Message/Body/SessionSetupReq/EVCCID:", "at most 8")


@pytest.mark.parametrize(("doc", "needles"), [
    ({"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"SessionSetupReq": {}}}},
     ("V2G_Message/Body/SessionSetupReq:", "required", "EVCCID")),
    ({"V2G_Message": {"Header": {"SessionID": "00", "Foo": 1}, "Body": {}}}, ("V2G_Message/Header:", "'Foo'")),
    ({"Nope": {}}, ("Nope:", "not a global element")),
    ([1, 2], ("<root>:", "exactly one root")),
])
def test_encode_other_schema_violations(doc, needles):
    assert_clean_failure(cli("encode", "--ns", "din", "-", stdin=json.dumps(doc)), 1, "error:", *needles)


@pytest.mark.parametrize(("data", "needle"), [
    ("809a00", "end of stream"),
    ("009a004011d01b486c1104ec3c00", "header"),
    ("", "empty"),
])
def test_decode_bad_exi(data, needle):
    assert_clean_failure(cli("decode", "--ns", "din", data), 1, "error:", needle)


def test_decode_huge_unsigned_integer_fails_cleanly():
    # SessionID length field replaced by 3000 continuation bytes: an error message, never a traceback
    data = "809a00" + "7f" + "ff" * 3000 + "00"
    assert_clean_failure(cli("decode", "--ns", "din", data), 1, "error:")


def test_unknown_namespace():
    assert_clean_failure(cli("decode", "--ns", "iso3", DIN_HEX), 1, "unknown EXI namespace 'iso3'")
    assert_clean_failure(cli("encode", "--ns", "iso3", "-", stdin=json.dumps(DIN_DOC)), 1, "unknown EXI namespace")


def test_missing_namespace_option_is_a_usage_error():
    p = cli("decode", DIN_HEX)
    assert p.returncode == 2
    assert "--ns" in p.stderr
