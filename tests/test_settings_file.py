"""The settings loader (settings_file.py): TOML into typed dataclass trees, refusals that name the file and the key,
flag overrides, and TOML output with secrets masked that loads back to the same tree."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from v2gstack.settings_file import MASK, SettingsError, dumps, from_dict, key_name, load, mask_url_password, setting


@dataclass
class Inner:
    """A nested table."""

    port: int = setting(15118, min=0, max=65535, flag="--port")
    ratio: float = 1.0
    mode: Literal["None", "Gzip"] = "None"
    key_password: str | None = setting(None, secret=True)


@dataclass
class Item:
    """An array-of-tables item."""

    power: float = setting(11000.0, min=0)
    modes: list[str] = field(default_factory=lambda: ["AC"])


@dataclass
class Tree:
    """A settings tree with each supported kind of value."""

    name: str = "x"
    enabled: bool = False
    cert: str | None = setting(None, path=True)
    url: str = setting("sqlite:///a.db", mask=mask_url_password)
    inner: Inner = field(default_factory=Inner)
    item: list[Item] = field(default_factory=lambda: [Item()])


def refusal(data: dict[str, object]) -> str:
    with pytest.raises(SettingsError) as e:
        from_dict(Tree, data, "x.toml")
    return str(e.value)


def test_wrong_types_unknown_keys_and_non_finite_numbers_are_refused_by_file_and_key() -> None:
    """Each refusal names the file and the key (the table, the array item) and what was expected."""
    assert refusal({"inner": {"port": "abc"}}) == 'x.toml: [inner] port: expected an integer, got "abc"'
    assert refusal({"inner": {"port": 1.5}}) == "x.toml: [inner] port: expected an integer, got 1.5"
    assert refusal({"inner": {"port": True}}) == "x.toml: [inner] port: expected an integer, got true"
    assert refusal({"inner": {"port": 70000}}) == "x.toml: [inner] port: must be at most 65535, got 70000"
    assert refusal({"inner": {"ratio": float("nan")}}) == "x.toml: [inner] ratio: expected a finite number, got nan"
    assert refusal({"inner": {"ratio": float("inf")}}).endswith("expected a finite number, got inf")
    assert refusal({"enabled": "yes"}) == 'x.toml: enabled: expected true or false, got "yes"'
    assert refusal({"inner": {"mode": "zip"}}) == 'x.toml: [inner] mode: expected one of "None", "Gzip", got "zip"'
    assert refusal({"item": [{}, {"power": -1}]}) == "x.toml: [[item]] #2 power: must be at least 0, got -1"
    assert refusal({"item": [{"modes": ["AC", 3]}]}) == "x.toml: [[item]] #1 modes[1]: expected a string, got 3"
    assert refusal({"inner": 3}) == "x.toml: inner: expected a table, got an integer"
    assert refusal({"inner": {"prot": 1}}).startswith("x.toml: [inner] prot: unknown key (known here: ")
    assert refusal({"nme": "a"}).startswith("x.toml: nme: unknown key")


def test_secrets_and_key_contents_never_appear_in_refusals() -> None:
    """A secret of the wrong type is described, not repeated; PEM text where a file path belongs is refused."""
    message = refusal({"inner": {"key_password": 123456789}})
    assert message == "x.toml: [inner] key_password: expected a string, got an integer"
    pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----"
    message = refusal({"cert": pem})
    assert "MIGH" not in message and "[cert]" not in message and message.startswith("x.toml: cert: expected a file")


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    """Unreadable and malformed files: the message names the file (and TOML's line and column)."""
    with pytest.raises(SettingsError, match=r"^nothere.toml: cannot read"):
        load(Tree, tmp_path / "nothere.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"^bad.toml: not valid TOML: .*line 1"):
        load(Tree, bad)


def test_relative_paths_are_taken_from_the_files_folder(tmp_path: Path) -> None:
    """A relative path in the file is resolved against the file's folder (the file can move with its certificates);
    an absolute one is kept."""
    (tmp_path / "conf").mkdir()
    f = tmp_path / "conf" / "s.toml"
    f.write_text('cert = "certs/secc.pem"\n', encoding="utf-8")
    assert load(Tree, f).tree.cert == str((tmp_path / "conf" / "certs" / "secc.pem").resolve())
    f.write_text('cert = "/etc/secc.pem"\n', encoding="utf-8")
    assert load(Tree, f).tree.cert == "/etc/secc.pem"


def test_dump_masks_secrets_and_loads_back() -> None:
    """The TOML output loads back to the same tree (unmasked), and masked it shows `***` for every secret and a URL
    without its password."""
    tree = from_dict(Tree, {"name": 'a "quoted"\tname\x7f', "url": "postgresql://u:hunter2-pw@db/x",
                            "inner": {"key_password": "s3cret-key-pw", "ratio": 2.5e-3, "mode": "Gzip"},
                            "item": [{"power": 22000}, {"modes": ["DC", "AC"]}]}, "x.toml")
    assert from_dict(Tree, tomllib.loads(dumps(tree, masked=False)), "again") == tree
    shown = dumps(tree)
    assert "s3cret" not in shown and "hunter2" not in shown
    data = tomllib.loads(shown)
    assert data["inner"]["key_password"] == MASK and data["url"] == f"postgresql://u:{MASK}@db/x"
    assert "# cert is not set" in shown and data["item"][1]["modes"] == ["DC", "AC"]


def test_overrides_are_checked_and_blamed_on_their_flag(tmp_path: Path) -> None:
    """A flag's value is checked like a file value; a problem with a key the flag set names the flag, other keys the
    file."""
    f = tmp_path / "s.toml"
    f.write_text("[inner]\nport = 100\n", encoding="utf-8")
    loaded = load(Tree, f)
    loaded.override(("inner", "port"), 200, "--port")
    assert loaded.tree.inner.port == 200
    with pytest.raises(SettingsError, match=r"^--port: must be at most 65535, got 70000$"):
        loaded.override(("inner", "port"), 70000, "--port")
    assert str(loaded.error(("inner", "port"), "taken")) == "--port: taken"
    assert str(loaded.error(("inner", "ratio"), "too big")) == "s.toml: [inner] ratio: too big"
    assert str(load(Tree).error(("inner", "port"), "taken")) == "--port: taken"  # no file: the key's flag


def test_key_names() -> None:
    """How keys are named in messages."""
    assert key_name(("iso15118", "secc_port")) == "[iso15118] secc_port"
    assert key_name(("csms", "tls", "cert")) == "[csms.tls] cert"
    assert key_name(("evse", 1, "max_power_w")) == "[[evse]] #2 max_power_w"
    assert key_name(("time_scale",)) == "time_scale"
    assert key_name(("evse", 0)) == "[[evse]] #1"
