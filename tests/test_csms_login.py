"""Browser login of the CSMS API over real sockets: users from the CLI, session cookie, CSRF, lockout, TLS, audit."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers.csms import PASSWORD, running_csms
from helpers.dashboard import USER_PASSWORD, add_user, served
from helpers.ocpp import make_pki

from v2gstack.csms.login import COOKIE, CSRF_HEADER, LoginPolicy
from v2gstack.csms.users import Users


def _login(client: httpx.Client | httpx.AsyncClient, name: str, password: str = USER_PASSWORD) -> object:
    return client.post("/api/login", json={"name": name, "password": password})


def test_add_user_cli_stores_scrypt_never_the_password(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    cmd = [sys.executable, "-m", "v2gstack", "csms", "add-user", "alice", "--role", "operator", "--password-stdin",
           "--db", db]
    done = subprocess.run(cmd, input=f"{USER_PASSWORD}\n", capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "user alice (operator" in done.stdout
    short = subprocess.run([*cmd[:-2], "--db", db], input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 1 and "12 to 200 characters" in short.stderr
    bad_role = subprocess.run([*cmd[:7], "root", "--password-stdin", "--db", db], input=f"{USER_PASSWORD}\n",
                              capture_output=True, text=True, timeout=60)
    assert bad_role.returncode == 2 and "role is one of" in bad_role.stderr
    raw = (tmp_path / "c.db").read_bytes()
    assert USER_PASSWORD.encode() not in raw and b"scrypt$" in raw
    listed = subprocess.run([sys.executable, "-m", "v2gstack", "csms", "users", "--db", db], capture_output=True,
                            text=True, timeout=60)
    assert "\talice\toperator\tactive" in listed.stdout
    audit = subprocess.run([sys.executable, "-m", "v2gstack", "csms", "audit", "--db", db], capture_output=True,
                           text=True, timeout=60)
    assert "add-user alice --role operator" in audit.stdout and USER_PASSWORD not in audit.stdout


async def test_login_cookie_csrf_roles_logout(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"CS1": PASSWORD}) as csms:
        add_user(csms, "olga", "operator")
        add_user(csms, "vic", "viewer")
        async with served(csms) as url, httpx.AsyncClient(base_url=url) as web:
            assert (await web.get("/api/stations")).status_code == 401  # no cookie, no token
            assert (await _login(web, "olga", "wrong password!!")).status_code == 401
            assert (await _login(web, "nobody")).status_code == 401
            r = await _login(web, "olga")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["role"] == "operator" and len(body["csrfToken"]) >= 40
            cookie = r.headers["set-cookie"]
            assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
            assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
            assert (await web.get("/api/stations")).json()[0]["id"] == "CS1"  # the cookie authenticates
            assert (await web.get("/api/session")).json()["csrfToken"] == body["csrfToken"]
            async with httpx.AsyncClient(base_url=url) as stranger:
                assert (await stranger.get("/api/session")).json() == {"loggedIn": False}
            # a state-changing call with the cookie but without the CSRF header: refused before anything is sent
            stop = {"transactionId": "tx-1"}
            no_csrf = await web.post("/api/stations/CS1/request-stop", json=stop)
            assert no_csrf.status_code == 403 and CSRF_HEADER in no_csrf.json()["detail"]
            wrong = await web.post("/api/stations/CS1/request-stop", json=stop, headers={CSRF_HEADER: "x" * 43})
            assert wrong.status_code == 403
            ok = await web.post("/api/stations/CS1/request-stop", json=stop,
                                headers={CSRF_HEADER: body["csrfToken"]})
            assert ok.status_code == 409  # passed CSRF and role: the station is just not connected
            # an operator is no admin: registry changes need the admin role, as with tokens
            reg = await web.post("/api/stations", json={"id": "CS2"}, headers={CSRF_HEADER: body["csrfToken"]})
            assert reg.status_code == 403
            audit = csms.store.audit(limit=10)
            assert any(a["actor"] == "olga" and a["action"] == "RequestStopTransaction" and a["status"] == 409
                       for a in audit)
            assert any(a["actor"] == "olga" and a["action"] == "login" for a in audit)
            assert (await web.post("/api/logout", json={})).status_code == 403  # logout needs the CSRF token too
            out = await web.post("/api/logout", json={}, headers={CSRF_HEADER: body["csrfToken"]})
            assert out.status_code == 204 and f'{COOKIE}=""' in out.headers["set-cookie"]
            web.cookies.set(COOKIE, cookie.split(";")[0].split("=", 1)[1])  # replay the old cookie: dead
            assert (await web.get("/api/stations")).status_code == 401
        async with served(csms) as url, httpx.AsyncClient(base_url=url) as web:  # a viewer reads, never commands
            token = (await _login(web, "vic")).json()["csrfToken"]
            assert (await web.get("/api/transactions")).status_code == 200
            r = await web.post("/api/stations/CS1/request-stop", json={"transactionId": "t"},
                               headers={CSRF_HEADER: token})
            assert r.status_code == 403 and "operator" in r.json()["detail"]
            Users(csms.store).disable("vic")  # a disabled user's session ends at its next request
            assert (await web.get("/api/transactions")).status_code == 401


async def test_failed_logins_lock_the_name_then_the_client(tmp_path: Path) -> None:
    policy = LoginPolicy(max_failures=3, max_failures_per_client=5, lockout_s=600)
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms:
        for name in ("ann", "bob"):
            add_user(csms, name, "viewer")
        async with served(csms, login=policy) as url, httpx.AsyncClient(base_url=url) as web:
            for _ in range(3):
                assert (await _login(web, "ann", "not the password")).status_code == 401
            locked = await _login(web, "ann")  # the right password, but the name is locked: not even checked
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 500
            assert (await web.get("/api/stations")).status_code == 401  # and no cookie was set
            assert (await _login(web, "bob")).status_code == 200  # another name from the same client still works
            for _ in range(2):  # 3 + 2 failures from this client: the client is locked for every name
                assert (await _login(web, "bob", "not the password")).status_code == 401
            assert (await _login(web, "bob")).status_code == 429


async def test_api_over_tls_sets_a_secure_cookie(tmp_path: Path) -> None:
    pki = make_pki()
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms:
        add_user(csms, "ada", "admin")
        ctx = ssl.create_default_context(cafile=str(pki.root))
        async with served(csms, cert=pki.server_cert, key=pki.server_key) as url, \
                httpx.AsyncClient(base_url=url, verify=ctx) as web:
            assert url.startswith("https://")
            r = await _login(web, "ada")
            assert r.status_code == 200
            assert "Secure" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
            assert (await web.get("/api/audit")).status_code == 200  # admin, over HTTPS, with the cookie
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the HTTPS port: no answer
            async with served(csms, cert=pki.server_cert, key=pki.server_key) as url, \
                    httpx.AsyncClient(base_url=url.replace("https", "http")) as plain:
                await plain.get("/api/health")


async def test_sessions_are_bounded_the_oldest_login_ends_first(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms:
        add_user(csms, "vic", "viewer")
        async with served(csms, login=LoginPolicy(max_sessions=2)) as url:
            browsers = [httpx.AsyncClient(base_url=url) for _ in range(3)]
            try:
                for web in browsers:
                    assert (await _login(web, "vic")).status_code == 200
                assert [(await web.get("/api/session")).json()["loggedIn"] for web in browsers] == [False, True, True]
            finally:
                for web in browsers:
                    await web.aclose()
