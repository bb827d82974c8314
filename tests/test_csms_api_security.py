"""The CSMS REST API's defences, over real sockets: its own loopback bind address, bearer tokens with roles, expiry
and revocation, the audit log, no cross-site or DNS-rebinding access, request size caps; and an older database file
that gains the new tables."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from helpers.csms import PASSWORD, api_token, auth, our_station, running_csms, served_api
from helpers.wait import until

from v2gstack.csms.auth import secret_hash
from v2gstack.csms.guard import allowed_hosts
from v2gstack.csms.models import ApiToken, AuditRecord, Base
from v2gstack.csms.store import Store, StoreError

pytestmark = pytest.mark.timeout(120)

MAX_PROFILE = {"id": 7, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
               "chargingProfileKind": "Absolute", "chargingSchedule": [{  # OCPP 2.1: never Relative (K01.FR.38)
                   "id": 1, "chargingRateUnit": "W", "startSchedule": "2024-01-01T00:00:00Z",
                   "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}]}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


async def _cli(*args: str) -> tuple[int, str, str]:
    """Run `v2gstack ...` in a child process: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "v2gstack", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def _csms_process(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, str], list[str]]]:
    """`v2gstack csms ARGS` until it announces both endpoints; yields (process, {"ocpp": url, "api": url}, output
    lines so far); afterwards the lines hold everything it printed and logged."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "v2gstack", "csms", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[str] = []
    urls: dict[str, str] = {}
    try:
        async with asyncio.timeout(60):
            while "api" not in urls:
                line = (await proc.stdout.readline()).decode()
                assert line, "the CSMS exited:\n" + "".join(lines)
                lines.append(line)
                if line.startswith("CSMS: OCPP ") and " at " in line:
                    urls["ocpp"] = line.split(" at ")[1].split()[0]
                if "REST API at " in line:
                    urls["api"] = line.split(" at ")[1].split()[0].removesuffix("/api")
        yield proc, urls, lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = await proc.stdout.read()
        lines.append(rest.decode())
        await proc.wait()


# ----- finding 1: no authentication, API on the OCPP bind address -----

async def test_api_binds_loopback_and_every_endpoint_but_health_needs_a_token_of_the_right_role(
        tmp_path: Path) -> None:
    """`v2gstack csms --host 0.0.0.0`: OCPP on every interface, the API on 127.0.0.1 only; tokens made by the CLI
    (hashed, listed without secrets, revocable, expiring) with roles; 401/403; every change audited; no token in the
    logs (debug logging on)."""
    db = f"sqlite:///{tmp_path / 'csms.db'}"
    tokens: dict[str, str] = {}
    for role in ("viewer", "operator", "admin"):
        code, out, err = await _cli("csms", "create-token", "--role", role, "--name", f"{role}-1", "--db", db)
        assert code == 0, err
        tokens[role] = out.strip()
        assert tokens[role].startswith("v2gcsms_") and "shown only now" in err
    store = Store(db)
    try:
        for token in tokens.values():  # stored by id, the secret only as its hash
            token_id, secret = token.removeprefix("v2gcsms_").split(".")
            record = store.api_token(token_id)
            assert record is not None and record.secret_sha256 == secret_hash(secret) != secret
        expired_secret = secrets.token_urlsafe(32)
        store.add_api_token("0123456789ab", "old", "admin", secret_hash(expired_secret),
                            datetime.now(UTC) - timedelta(seconds=1))
    finally:
        store.close()
    expired = f"v2gcsms_0123456789ab.{expired_secret}"
    api_port = _free_port()
    async with _csms_process("--host", "0.0.0.0", "--port", "0", "--api-port", str(api_port), "--db", db,
                             "-v") as (_proc, urls, lines):
        ocpp_port = int(urls["ocpp"].rsplit(":", 1)[1].split("/")[0])
        assert urls["api"] == f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient(base_url=urls["api"]) as api:
            assert (await api.get("/api/health")).json() == {"status": "ok"}  # it listens (no token needed)
            # 127.0.0.2 is this machine too: the OCPP server (0.0.0.0) answers there, the API (127.0.0.1) does not
            assert await asyncio.to_thread(_reachable, "127.0.0.2", ocpp_port)
            assert not await asyncio.to_thread(_reachable, "127.0.0.2", api_port)
            r = await api.get("/api/stations")
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            for bad in ("Bearer nonsense", f"Bearer {tokens['admin'][:-1]}x", f"Bearer {expired}",
                        f"Basic {tokens['admin']}"):
                assert (await api.get("/api/stations", headers={"Authorization": bad})).status_code == 401, bad
            assert (await api.get("/api/stations", headers=auth(tokens["viewer"]))).status_code == 200
            station = {"id": "CS2", "password": PASSWORD}
            for role in ("viewer", "operator"):  # a viewer reads, an operator commands; neither administers
                r = await api.post("/api/stations", json=station, headers=auth(tokens[role]))
                assert r.status_code == 403 and "admin" in r.json()["detail"], r.text
                r = await api.delete("/api/idtokens/ISO14443/04A1B2C3", headers=auth(tokens[role]))
                assert r.status_code == 403
            r = await api.post("/api/stations/CS2/reset", json={"type": "Immediate"}, headers=auth(tokens["viewer"]))
            assert r.status_code == 403  # commands need an operator
            r = await api.post("/api/stations/CS2/reset", json={"type": "Immediate"}, headers=auth(tokens["operator"]))
            assert r.status_code == 409  # allowed: the station is just not connected
            r = await api.post("/api/stations/CS2/install-certificate", headers=auth(tokens["operator"]),
                               json={"certificateType": "MORootCertificate", "certificate": "x"})
            assert r.status_code == 403  # a station's trust anchors are an admin's business
            assert (await api.post("/api/stations", json=station, headers=auth(tokens["admin"]))).status_code == 201
            assert (await api.get("/api/audit", headers=auth(tokens["operator"]))).status_code == 403
            audit = (await api.get("/api/audit", headers=auth(tokens["admin"]))).json()
            # revocation through the CLI takes effect at the next request
            code, out, _ = await _cli("csms", "revoke-token", tokens["viewer"][8:20], "--db", db)
            assert code == 0
            assert (await api.get("/api/stations", headers=auth(tokens["viewer"]))).status_code == 401
    seen = [(a["method"], a["path"], a["action"], a["stationId"], a["status"], a["role"], a["actor"]) for a in audit]
    assert ("POST", "/api/stations", "add_station", "CS2", 201, "admin", "admin-1") in seen
    assert ("POST", "/api/stations", "add_station", None, 403, "viewer", "viewer-1") in seen  # refused before the body
    assert ("POST", "/api/stations/CS2/reset", "Reset", "CS2", 409, "operator", "operator-1") in seen
    assert ("POST", "/api/stations/CS2/install-certificate", "InstallCertificate", "CS2", 403, "operator",
            "operator-1") in seen
    assert ("DELETE", "/api/idtokens/ISO14443/04A1B2C3", "delete_token", None, 403, "operator", "operator-1") in seen
    by_api = [a for a in audit if a["method"] != "CLI"]
    assert all(a["client"].startswith("127.0.0.1:") and a["tokenId"] for a in by_api)
    assert not any(a["method"] == "GET" for a in by_api) and len(by_api) == 8
    assert [a["path"] for a in audit if a["method"] == "CLI"] == [  # the CLI's changes: who made which token
        f"v2gstack csms create-token --role {r} --name {r}-1" for r in ("admin", "operator", "viewer")]
    code, listing, _ = await _cli("csms", "tokens", "--db", db)
    assert code == 0 and "revoked" in listing and "expired" in listing and listing.count("active") == 2
    code, out, _ = await _cli("csms", "audit", "--db", db)
    assert '"action": "revoke-token"' in out and '"action": "create-token"' in out  # the CLI's changes too
    logged = "".join(lines)
    assert "refused GET /api/stations" in logged  # the refusals are logged ...
    for token in [*tokens.values(), expired]:
        secret = token.split(".", 1)[1]
        assert secret not in logged + out + listing and secret_hash(secret) not in logged + listing  # ... no secret


# ----- finding 2: cross-site requests and DNS rebinding -----

async def test_cross_site_posts_and_foreign_hosts_cannot_clear_a_stations_limits(tmp_path: Path) -> None:
    """The simple cross-origin POST (text/plain, empty body) to clear-charging-profile no longer reaches the station,
    not even with a token; a body is required; a foreign Host (DNS rebinding) is refused; no CORS is offered."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, our_station(csms) as st, \
            served_api(csms) as base, httpx.AsyncClient(base_url=base) as api:
        await st.wait_accepted()
        await csms.call("CS1", "SetChargingProfile", {"evseId": 0, "chargingProfile": MAX_PROFILE})
        assert 7 in st.smart_charging.profiles.items
        token = api_token(csms, "operator")
        url = "/api/stations/CS1/clear-charging-profile"
        origin = {"Origin": "http://evil.example"}
        attempts: list[tuple[dict[str, str], bytes, int]] = [
            ({"Content-Type": "text/plain"}, b"", 415),  # what any web page can send
            ({"Content-Type": "application/json"}, b"{}", 401),  # needs a preflight in a browser, and a token
            ({"Content-Type": "text/plain", **auth(token)}, b"", 415),
            ({"Content-Type": "text/plain", **auth(token)}, b"{}", 415),
            ({"Content-Type": "application/x-www-form-urlencoded", **auth(token)}, b"a=b", 415),
            ({"Content-Type": "multipart/form-data; boundary=x", **auth(token)}, b"--x--", 415),
            ({"Content-Type": "application/json", **auth(token)}, b"", 422),  # no body: not `{}` by default
            ({"Content-Type": "application/json; charset=latin-1", **auth(token)}, b"{}", 415),
        ]
        for headers, body, status in attempts:
            r = await api.post(url, content=body, headers={**origin, **headers})
            assert r.status_code == status, (headers, r.text)
            assert "access-control-allow-origin" not in r.headers
        # DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends Host: evil.example
        r = await api.post(url, json={}, headers={"Host": "evil.example", **auth(token)})
        assert r.status_code == 400
        assert (await api.get("/api/health", headers={"Host": "evil.example:80"})).status_code == 400
        # no CORS preflight is answered with a permission
        r = await api.options(url, headers={**origin, "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "authorization,content-type"})
        assert r.status_code >= 400 and "access-control-allow-origin" not in r.headers
        assert 7 in st.smart_charging.profiles.items  # nothing of the above reached the station
        assert not [m for m in csms.store.messages(station_id="CS1") if m["action"] == "ClearChargingProfile"]
        # the API's own client, with a token, JSON and its Host, can
        for host in ("localhost", f"127.0.0.1:{base.rsplit(':', 1)[1]}"):
            r = await api.get("/api/stations/CS1", headers={"Host": host, **auth(token)})
            assert r.status_code == 200
        r = await api.post(url, json={"chargingProfileId": 7}, headers=auth(token))
        assert r.status_code == 200 and r.json()["response"]["status"] == "Accepted"
        await until(lambda: 7 not in st.smart_charging.profiles.items)


async def test_allowed_hosts_are_configured_names_and_the_bind_address(tmp_path: Path) -> None:
    """`--api-allowed-hosts` adds names (and `*.` sub-domains) to the loopback names and the bind address."""
    assert allowed_hosts("0.0.0.0") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts("::") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts("10.0.0.5", ["csms.example.com, *.ops.example.com", "fd00::1"])[3:] == [
        "10.0.0.5", "csms.example.com", "*.ops.example.com", "[fd00::1]"]
    with pytest.raises(ValueError):
        allowed_hosts("127.0.0.1", ["a.*.example.com"])
    names = allowed_hosts("127.0.0.1", ["csms.example.com,*.ops.example.com"])
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, served_api(csms, allowed_hosts=names) as base, \
            httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "viewer"))) as api:
        for host, status in (("csms.example.com", 200), ("CSMS.example.com:443", 200), ("a.ops.example.com", 200),
                             ("example.com", 400), ("csms.example.com.evil.example", 400), ("[::1]:80", 200)):
            assert (await api.get("/api/stations", headers={"Host": host})).status_code == status, host


# ----- finding 11: request sizes and bodies -----

async def _raw(port: int, request: bytes, *, then: bytes = b"") -> tuple[int, bytes]:
    """Send `request` on a fresh connection, read the answer's status line and headers (then send `then`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if then:
            with contextlib.suppress(ConnectionError):
                writer.write(then)
                await writer.drain()
        return int(head.split(b" ", 2)[1]), head
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_request_bodies_are_capped_and_must_be_utf8_json(tmp_path: Path) -> None:
    """A 50 MB Content-Length is refused before the body is sent, a chunked body as it passes the cap (1 MiB by
    default), a non-UTF-8 body gets 400 or 415 (not 500); the API keeps serving."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, served_api(csms) as base:
        port = int(base.rsplit(":", 1)[1])
        token = api_token(csms, "admin")
        head = (f"POST /api/idtokens HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\n")
        # 50 MB announced, nothing of it sent yet: the answer comes first
        status, answer = await _raw(port, (head + f"Content-Length: {50 * 1024 * 1024}\r\n\r\n").encode())
        assert status == 413 and b"connection: close" in answer.lower()
        # chunked: refused once the streamed size passes 1 MiB (every byte sent has been read, the rest never is)
        chunk = b"x" * 65536
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(16)) + b"1\r\nx\r\n"
        status, _ = await _raw(port, (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks,
                               then=b"0\r\n\r\n")
        assert status == 413
        # just below the cap it is read and parsed (and refused as JSON)
        status, _ = await _raw(port, (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks[:-6]
                               + b"0\r\n\r\n")
        assert status == 422
        async with httpx.AsyncClient(base_url=base, headers=auth(token)) as api:
            for content_type, status in (("application/json", 400), ("text/plain", 415), (None, 415),
                                         ("application/x-www-form-urlencoded", 415)):
                headers = {"Content-Type": content_type} if content_type else {}
                r = await api.post("/api/idtokens", content=b'{"idToken": "\xff\xfe"}', headers=headers)
                assert r.status_code == status, (content_type, r.text)
            r = await api.post("/api/idtokens", json={"idToken": "CAFE0001"})
            assert r.status_code == 201
    async with running_csms(f"sqlite:///{tmp_path / 'd.db'}") as csms, served_api(csms, max_body=4096) as base, \
            httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin"))) as api:
        r = await api.post("/api/idtokens", json={"idToken": "A", "account": "x" * 5000})
        assert r.status_code == 413  # the cap is configurable


# ----- an older database -----

def test_an_older_database_gains_the_token_and_audit_tables(tmp_path: Path) -> None:
    """A SQLite file made before API tokens existed opens, keeps its data and gets the new tables; an audit table
    lacking a required column is refused with a clear error (csms/migrate.py) instead of failing later."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    old_tables = [t for t in Base.metadata.sorted_tables if t.name not in (ApiToken.__tablename__,
                                                                           AuditRecord.__tablename__)]
    store = Store(url)
    store.add_station("CS1", PASSWORD)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE api_tokens")
        conn.execute("DROP TABLE audit_log")
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {t.name for t in old_tables}
    store = Store(url)
    try:
        assert store.station("CS1") is not None
        store.add_api_token("aaaaaaaaaaaa", "n", "viewer", "0" * 64, datetime.now(UTC) + timedelta(days=1))
        assert [t["id"] for t in store.api_tokens()] == ["aaaaaaaaaaaa"]
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE audit_log DROP COLUMN actor")
    with pytest.raises(StoreError, match=r"audit_log\.actor"):
        Store(url)
