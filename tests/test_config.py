"""Config: one ConfigError line per mistake, naming file, key and value; the seed never shown."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from p2p_energy import backends, config
from p2p_energy.config import Config, ConfigError, build, load, load_seed
from p2p_energy.core.trytes import TRYTE_ALPHABET, with_checksum

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
SEED = "PLAYSEED" * 10 + "Q"  # 81 trytes, easy to spot if it ever leaks
ADDRESS = "RECEIVER9" * 9  # 81 trytes
ADDRESS_90 = with_checksum(ADDRESS)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def error_of(path: Path, text: str, mode: int = 0o600) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(write(path, text, mode))
    return info.value


def assert_one_line(err: ConfigError, path: Path | str) -> str:
    text = str(err)
    assert len(text.splitlines()) == 1 and "\n" not in text, text
    assert text.startswith(f"{path}: "), text
    return text


# -- defaults and accepted files


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "")
    assert load(path) == dataclasses.replace(Config(), source=str(path))
    assert build({}) == Config()


def test_values_are_typed(tmp_path: Path) -> None:
    cfg = load(write(tmp_path / "c.toml", f"""
        [meter]
        i2c_address = 0x41
        shunt_ohms = [0.1, 0.05, 1]
        sample_interval_s = 2
        averages = 16
        [wallet]
        receiver = "{ADDRESS_90}"
        local_pow = true
    """))
    assert cfg.meter.i2c_address == 0x41
    assert cfg.meter.shunt_ohms == (0.1, 0.05, 1.0)
    assert isinstance(cfg.meter.sample_interval_s, float)
    assert cfg.meter.averages == 16
    assert cfg.wallet.receiver == ADDRESS_90
    assert cfg.wallet.local_pow is True


def test_an_81_tryte_receiver_needs_no_checksum() -> None:
    assert build({"wallet": {"receiver": ADDRESS}}).wallet.receiver == ADDRESS


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().wallet.seed = SEED  # type: ignore[misc]


# -- each kind of error, on one line


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load(path)
    message = assert_one_line(info.value, path)
    assert message.endswith("cannot read config file: No such file or directory")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"[meter]\nsensor = \"\xff\"\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text") as info:
        load(path)
    assert_one_line(info.value, path)


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    err = error_of(path, "[meter\nsensor = 1\n")
    assert "is not valid TOML" in assert_one_line(err, path)
    assert "line 1" in str(err)


@pytest.mark.parametrize(("text", "expected"), [
    ("[mter]\n", ': [mter]: unknown section (did you mean "meter"?)'),
    ("[\"a\\nb\"]\n", ': ["a\\nb"]: unknown section'),
    ("meter = 5\n", ": meter: must be a table"),
    ("[meter]\nsensr = \"ina3221\"\n", ': meter.sensr: unknown key (did you mean "sensor"?)'),
    ("[meter]\ni2c_bus = \"1\"\n", ': meter.i2c_bus = "1": must be a whole number'),
    ("[meter]\ni2c_bus = 1.0\n", ": meter.i2c_bus = 1.0: must be a whole number"),
    ("[meter]\ni2c_bus = 256\n", ": meter.i2c_bus = 256: must be between 0 and 255"),
    ("[meter]\ni2c_address = 0x50\n", ": meter.i2c_address = 80: must be 0x40, 0x41, 0x42 or"
                                      " 0x43 (as set by the A0 pin), without quotes; this is 0x50"),
    ("[meter]\nsensor = true\n", ': meter.sensor = true: must be one of "ina3221", '
                                 '"simulated", "replay"'),
    ("[meter]\nshunt_ohms = [0.1, 0.1]\n", ": meter.shunt_ohms = [0.1, 0.1]: must be a list of"
                                           " three resistances in ohms, one per channel"),
    ("[meter]\nshunt_ohms = [0.1, 0.0, 0.1]\n", ": meter.shunt_ohms = [0.1, 0.0, 0.1]: must be"
                                                " above 0 and at most 1000"),
    ("[meter]\nsample_interval_s = inf\n", ": meter.sample_interval_s = inf: must be at least"
                                           " 0.01 and at most 3600"),
    ("[meter]\naverages = \"AUTO\"\n", ': meter.averages = "AUTO": must be one of 1, 4, 16'),
    ("[round]\nlength_s = false\n", ": round.length_s = false: must be a number"),
    ("[wallet]\nlocal_pow = \"yes\"\n", ': wallet.local_pow = "yes": must be true or false'),
    ("[wallet]\nnode_url = \"127.0.0.1:14265\"\n", ': wallet.node_url = "127.0.0.1:14265": must be'
                                                  " an http:// or https:// URL"),
    ("[wallet]\ntag = \"energy\"\n", ': wallet.tag = "energy": must be 1 to 27 trytes'),
    ("[wallet]\nreceiver = \"ABC\"\n", ': wallet.receiver = "ABC": must be an IOTA address'),
    ("[ledger]\npath = 5\n", ": ledger.path = 5: must be a string"),
    ("[meter]\nproducer_channel = 1\n", ": meter.producer_channel = 1: must differ from"
                                        " meter.consumer_channel"),
    ("[meter]\nsensor = \"replay\"\n", ': meter.replay_file = "": is required when'
                                       ' meter.sensor = "replay"'),
    ("[round]\nlength_s = 0.5\n", ": round.length_s = 0.5: must be at least"
                                  " meter.sample_interval_s (1)"),
    # No file "s": the value may be a secret put in the wrong key, so it is not shown.
    (f"[wallet]\nseed = \"{SEED}\"\nseed_file = \"s\"\n",
     ": wallet.seed_file: set wallet.seed or wallet.seed_file, not both"),
    # TOML takes whole numbers of any size; float() of this one overflows.
    ("[round]\nlength_s = " + "9" * 400 + "\n", ": round.length_s = 99999"),
])
def test_each_error_is_one_line_naming_file_key_and_value(
        tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.toml"
    message = assert_one_line(error_of(path, text), path)
    assert message.startswith(f"{path}{expected}"), message


def test_error_carries_its_data(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    err = error_of(path, "[wallet]\nlocal_pow = \"yes\"\n")
    assert (err.path, err.key, err.value, err.reason) == (
        str(path), "wallet.local_pow", "yes", "must be true or false")


def test_long_values_are_shortened(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    ones = ", ".join(["1"] * 200)
    message = str(error_of(path, f"[ledger]\npath = [{ones}]\n"))
    assert "..." in message and len(message) < len(str(path)) + 200


def test_wrong_checksum_names_key_and_value_but_not_the_right_checksum(tmp_path: Path) -> None:
    bad = ADDRESS_90[:-1] + ("A" if ADDRESS_90[-1] != "A" else "B")
    path = tmp_path / "c.toml"
    message = assert_one_line(error_of(path, f'[wallet]\nreceiver = "{bad}"\n'), path)
    assert message == (f'{path}: wallet.receiver = "{bad}": has a wrong checksum (its last 9'
                       " trytes): check the address for a typo")
    assert ADDRESS_90[81:] not in message


# -- passwords and tokens in URLs never show


@pytest.mark.parametrize(("body", "key", "secret"), [
    ('[wallet]\nnode_url = "https://alice:s3cretpw@node.example.org:14265"\n',
     "wallet.node_url", "s3cretpw"),
    ('[wallet]\nnode_url = "http://alice@127.0.0.1:14265"\n', "wallet.node_url", "alice"),
    ('[wallet]\nbackend = "iota"\nnode_url = "https://alice:s3cretpw@node.example.org:443"\n',
     "wallet.node_url", "s3cretpw"),
    ('[wallet]\nbackend = "iota"\nnode_url = "https://node.example.org/rpc?key=t0k3nvalue"\n',
     "wallet.node_url", "t0k3nvalue"),
    ('[wallet]\nnode_url = "https://node.example.org/api?apikey=t0k3nvalue"\n',
     "wallet.node_url", "t0k3nvalue"),
    ('[wallet]\nnode_url = "https://node.example.org/#t0k3nvalue"\n', "wallet.node_url",
     "t0k3nvalue"),
    ('[mqtt]\nbroker = "mqtt://bob:hunter2secret@127.0.0.1:1883"\n', "mqtt.broker",
     "hunter2secret"),
    ('[mqtt]\nbroker = "mqtts://broker.lan:8883?password=hunter2secret"\n', "mqtt.broker",
     "hunter2secret"),
])
def test_a_url_holding_a_password_or_token_is_refused_without_showing_it(
        tmp_path: Path, body: str, key: str, secret: str) -> None:
    path = tmp_path / "c.toml"
    err = error_of(path, body)
    message = assert_one_line(err, path)
    assert message.startswith(f"{path}: {key}: must not hold"), message
    assert secret not in message and secret not in repr(err) and err.value is None
    assert "listen" not in message and "8080" not in message  # not serve.listen's hint
    if key == "mqtt.broker":
        assert "mqtt.username" in message and "mqtt.password_file" in message
    else:
        assert "node.example.org:14265" in message  # what to write instead


@pytest.mark.parametrize("url", ["http://127.0.0.1:14265", "https://node.lan/api/v1",
                                 "https://[::1]:14265", "http://node.lan:14265/path@v2"])
def test_plain_node_urls_are_taken(tmp_path: Path, url: str) -> None:
    cfg = load(write(tmp_path / "c.toml", f'[wallet]\nnode_url = "{url}"\n'))
    assert cfg.wallet.node_url == url


def test_a_broker_with_a_bad_port_gets_the_brokers_rule(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    message = assert_one_line(error_of(path, '[mqtt]\nbroker = "mqtt://broker.lan:x"\n'), path)
    assert message == (f'{path}: mqtt.broker = "mqtt://broker.lan:x": must be'
                       " mqtt://host[:port] or mqtts://host[:port], the port a number up to 65535")


# -- the seed never shows


@pytest.mark.parametrize("seed", [SEED[:-1], SEED + "A", SEED.lower(), SEED[:-1] + "!"])
def test_a_bad_seed_is_named_but_never_shown(tmp_path: Path, seed: str) -> None:
    path = tmp_path / "c.toml"
    err = error_of(path, f'[wallet]\nseed = "{seed}"\n')
    message = assert_one_line(err, path)
    assert message.startswith(f"{path}: wallet.seed: must be exactly 81 trytes")
    assert "pad a shorter seed with 9s" in message
    assert seed not in message and seed not in repr(err) and err.value is None


def test_a_misspelt_seed_key_does_not_show_the_seed(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    for text in (f'[wallet]\nsed = "{SEED}"\n', f'wallet = "{SEED}"\n'):
        err = error_of(path, text)
        assert SEED not in str(err) and err.value is None


def test_repr_of_config_hides_the_seed(tmp_path: Path) -> None:
    cfg = load(write(tmp_path / "c.toml", f'[wallet]\nseed = "{SEED}"\n'))
    assert cfg.wallet.seed == SEED
    assert SEED not in repr(cfg) and SEED not in str(cfg)


@pytest.mark.parametrize(("mode", "who"), [
    (0o644, "group and others"), (0o640, "group"), (0o604, "others")])
def test_config_holding_the_seed_must_be_private(tmp_path: Path, mode: int, who: str) -> None:
    path = tmp_path / "config.toml"
    message = assert_one_line(error_of(path, f'[wallet]\nseed = "{SEED}"\n', mode), path)
    assert message == (f"{path}: holds wallet.seed but is readable by {who}"
                       f" (mode {mode:04o}): run chmod 600 {path}")
    assert SEED not in message


def test_chmod_advice_quotes_awkward_paths(tmp_path: Path) -> None:
    path = tmp_path / "my config.toml"
    message = str(error_of(path, f'[wallet]\nseed = "{SEED}"\n', 0o644))
    assert message.endswith(f"run chmod 600 '{path}'")


@pytest.mark.parametrize(("value", "reason"), [
    ("", "is empty: give the ledger file's path, e.g. \"/var/lib/p2p-energy/ledger.db\""),
    ("   ", "is empty: give the ledger file's path, e.g. \"/var/lib/p2p-energy/ledger.db\""),
    (":memory:", "is SQLite's in-memory database, which keeps nothing: give a file path"),
    ("file:ledger.db", "is an SQLite URI: give a plain file path"),
    ("file::memory:?cache=shared", "is an SQLite URI: give a plain file path"),
])
def test_a_ledger_that_keeps_nothing_is_refused(tmp_path: Path, value: str, reason: str) -> None:
    path = tmp_path / "c.toml"
    err = error_of(path, f'[ledger]\npath = "{value}"\n')
    assert assert_one_line(err, path) == f'{path}: ledger.path = "{value}": {reason}'


def test_a_shared_config_without_a_seed_is_fine(tmp_path: Path) -> None:
    no_seed = load(write(tmp_path / "c.toml", '[wallet]\nseed = ""\n', 0o644))
    assert (no_seed.wallet.seed, no_seed.wallet.seed_file) == ("", "")
    assert no_seed.source == str(tmp_path / "c.toml")
    naming = load(write(tmp_path / "c.toml", '[wallet]\nseed_file = "seed"\nreceiver ='
                        f' "{ADDRESS}"\n', 0o644))
    assert (naming.wallet.seed, naming.wallet.seed_file) == ("", "seed")
    assert naming.wallet.receiver == ADDRESS  # the rest of the file loaded as written
    assert stat.S_IMODE(os.stat(tmp_path / "c.toml").st_mode) == 0o644  # shared indeed


# -- load_seed: config, seed file, systemd credential


def _with_seed_file(tmp_path: Path, content: str, mode: int = 0o600,
                    name: str = "seed") -> Config:
    write(tmp_path / "seed", content, mode)
    return load(write(tmp_path / "config.toml", f'[wallet]\nseed_file = "{name}"\n', 0o644))


def _seed_error(cfg: Config, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_seed(cfg, environ=environ or {})
    message = str(info.value)
    assert "\n" not in message and SEED not in message and SEED not in repr(info.value)
    assert info.value.value != SEED
    return message


def test_seed_from_the_config(tmp_path: Path) -> None:
    cfg = load(write(tmp_path / "c.toml", f'[wallet]\nseed = "{SEED}"\n'))
    assert load_seed(cfg, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}) == SEED


def test_seed_file_relative_to_the_config_and_stripped(tmp_path: Path) -> None:
    cfg = _with_seed_file(tmp_path, f"  {SEED}\n")
    assert load_seed(cfg, environ={}) == SEED


def test_seed_file_absolute(tmp_path: Path) -> None:
    cfg = _with_seed_file(tmp_path, SEED, name=str(tmp_path / "seed"))
    assert load_seed(cfg, environ={}) == SEED


def test_seed_file_beats_the_credential(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    write(creds / "seed", "A" * 81)
    cfg = _with_seed_file(tmp_path, SEED)
    assert load_seed(cfg, environ={"CREDENTIALS_DIRECTORY": str(creds)}) == SEED


@pytest.mark.parametrize("backend", ["pyota", "dry-run"])
def test_shared_seed_file_is_refused_at_load_whatever_the_backend(tmp_path: Path,
                                                                  backend: str) -> None:
    write(tmp_path / "seed", SEED, 0o644)
    path = tmp_path / "config.toml"
    err = error_of(path, f'[wallet]\nbackend = "{backend}"\nseed_file = "seed"\n', 0o644)
    assert assert_one_line(err, path) == (
        f'{path}: wallet.seed_file = "seed": seed file {tmp_path}/seed is'
        f" readable by group and others (mode 0644): run chmod 600 {tmp_path}/seed")
    assert SEED not in str(err)


def test_seed_file_shared_after_load_is_still_refused_when_read(tmp_path: Path) -> None:
    cfg = _with_seed_file(tmp_path, SEED)
    (tmp_path / "seed").chmod(0o640)
    assert _seed_error(cfg).endswith(
        f"seed file {tmp_path}/seed is readable by group (mode 0640):"
        f" run chmod 600 {tmp_path}/seed")


def test_a_missing_seed_file_is_left_to_the_wallet_that_reads_it(tmp_path: Path) -> None:
    cfg = load(write(tmp_path / "c.toml", '[wallet]\nbackend = "dry-run"\nseed_file = "nope"\n'))
    assert cfg.wallet.seed_file == "nope"


@pytest.mark.parametrize(("content", "reason"), [
    (SEED[:40], "does not hold a seed: must be exactly 81 trytes"),
    (SEED + "9", "does not hold a seed"),
    (SEED.lower(), "does not hold a seed"),
    (f"{SEED}\n{SEED}\n", "does not hold a seed"),
    ("seed = " + SEED, "does not hold a seed"),
    ("\n  \n", "is empty"),
    (SEED + " " * 5000, "does not hold a seed"),
])
def test_bad_seed_file_contents_are_never_shown(tmp_path: Path, content: str,
                                                reason: str) -> None:
    cfg = _with_seed_file(tmp_path, content)
    message = _seed_error(cfg)
    assert message.startswith(f'{tmp_path}/config.toml: wallet.seed_file = "seed": seed file'
                              f" {tmp_path}/seed {reason}")
    assert content.strip() not in message or not content.strip()


def test_seed_file_not_utf8(tmp_path: Path) -> None:
    cfg = _with_seed_file(tmp_path, "")
    (tmp_path / "seed").write_bytes(b"\xff" * 81)
    assert "does not hold a seed" in _seed_error(cfg)


def test_missing_seed_file(tmp_path: Path) -> None:
    cfg = load(write(tmp_path / "c.toml", '[wallet]\nseed_file = "/nonexistent/seed"\n'))
    # A name that is no file may be the seed itself, put in the wrong key: not shown.
    assert _seed_error(cfg) == (f"{tmp_path}/c.toml: wallet.seed_file: cannot read seed file:"
                                " No such file or directory (the value is not shown: a name"
                                " that is no file may be the secret itself, put in the wrong"
                                " key)")


def test_seed_file_that_is_a_directory_or_fifo_does_not_hang(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo", 0o600)
    for name in ("dir", "fifo"):
        cfg = load(write(tmp_path / "c.toml", f'[wallet]\nseed_file = "{name}"\n'))
        assert _seed_error(cfg).endswith("is not a regular file")


def test_seed_from_the_systemd_credential(tmp_path: Path) -> None:
    # systemd gives the service user read access by an ACL, whose mask shows as
    # group bits: a credential is accepted whatever its group bits say.
    write(tmp_path / "seed", SEED + "\n", 0o440)
    assert load_seed(Config(), environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}) == SEED


def test_seed_from_the_credential_in_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "seed", SEED)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_seed(Config()) == SEED


def test_missing_credential_says_what_the_unit_needs(tmp_path: Path) -> None:
    assert _seed_error(Config(), {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == (
        f"{tmp_path}/seed: cannot read seed credential: No such file or directory"
        " (the unit needs LoadCredential=seed:/etc/p2p-energy/seed)")


def test_bad_credential_contents_are_never_shown(tmp_path: Path) -> None:
    write(tmp_path / "seed", SEED[:-1] + "a")
    message = _seed_error(Config(), {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert message.startswith(f"{tmp_path}/seed: seed credential does not hold a seed")


def test_no_seed_anywhere(tmp_path: Path) -> None:
    cfg = load(write(tmp_path / "c.toml", ""))
    assert _seed_error(cfg) == (f"{tmp_path}/c.toml: wallet.seed: no seed: set"
                                " wallet.seed_file, or run under systemd with"
                                " LoadCredential=seed:/etc/p2p-energy/seed")


# -- the example file


def _example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def test_example_loads_and_holds_every_key_with_its_default(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", _example_text(), 0o644)
    assert load(path) == dataclasses.replace(Config(), source=str(path))
    import tomllib
    data = tomllib.loads(_example_text())
    # Keys whose default follows wallet.backend are shown commented out: a value written
    # there would be wrong for the other backend (min_payment = 1 pays fees on "iota").
    for section, key in BACKEND_DEPENDENT:
        assert re.search(rf"^# {key} = ", _example_text(), re.M), key
        data[section][key] = getattr(getattr(Config(), section), key)
    top = {k: data.pop(k) for k in list(data) if k in config.TOP_LEVEL}
    assert top == {k: getattr(Config(), k) for k in config.TOP_LEVEL}  # role = "consumer"
    assert {s: set(keys) for s, keys in data.items()} == {
        s: set(keys) for s, keys in config.full_schema().items()}


BACKEND_DEPENDENT = (("wallet", "node_url"), ("wallet", "min_payment"))


def test_example_under_either_backend_takes_that_backends_defaults(tmp_path: Path) -> None:
    for backend in backends.names():
        text = _example_text().replace('backend = "pyota"', f'backend = "{backend}"')
        w = load(write(tmp_path / "config.toml", text, 0o644)).wallet
        defaults = backends.backend(backend)
        assert (w.node_url, w.min_payment) == (defaults.node_url, defaults.min_payment)


def test_example_with_a_receiver_filled_in_loads(tmp_path: Path) -> None:
    text = _example_text().replace('receiver = ""', f'receiver = "{ADDRESS_90}"')
    assert load(write(tmp_path / "config.toml", text, 0o644)).wallet.receiver == ADDRESS_90


def test_every_example_key_has_a_comment() -> None:
    lines = _example_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"[a-z_]+ = ", line):
            above = lines[i - 1]
            assert above.startswith("#") or re.match(r"[a-z_]+ = ", above), line


# -- property: any file either loads or fails with one line naming the file

_KEYS = [(s, k) for s, keys in config.SCHEMA.items() for k in keys]


def _typo(word: str) -> st.SearchStrategy[str]:
    def edit(i: int, how: int) -> str:
        i %= max(len(word), 1)
        return [word[:i] + word[i + 1:], word[:i] + word[i] * 2 + word[i + 1:],
                word.upper(), word + "s", word.replace("_", "-")][how]
    return st.builds(edit, st.integers(0, 30), st.integers(0, 4))


_scalars = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.integers(-5, 300),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 1e5),
    st.text(max_size=30), st.text(alphabet=TRYTE_ALPHABET, min_size=1, max_size=90),
    st.dates(min_value=datetime.date(1000, 1, 1)),
)
_any_value = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=8), inner, max_size=3),
    max_leaves=6)

_address = st.one_of(
    st.just(""), st.just(ADDRESS), st.just(ADDRESS_90), st.just("0x" + "ab" * 32),
    st.text(alphabet="0123456789abcdefX", min_size=64, max_size=65).map(lambda t: "0x" + t),
    st.text(alphabet=TRYTE_ALPHABET, min_size=81, max_size=81).map(with_checksum),
    st.text(alphabet=TRYTE_ALPHABET, min_size=90, max_size=90),  # almost surely a bad checksum
    st.text(alphabet=TRYTE_ALPHABET + "a ", max_size=95),
)
_seed = st.one_of(
    st.just(""), st.just(SEED),
    st.text(alphabet=TRYTE_ALPHABET, min_size=81, max_size=81),
    st.text(alphabet=TRYTE_ALPHABET + "a", min_size=20, max_size=100),
)
_GOOD: dict[str, st.SearchStrategy[Any]] = {
    "meter.sensor": st.sampled_from([*config.SENSORS, "INA3221", ""]),
    "meter.i2c_address": st.integers(0x3E, 0x45),
    "meter.consumer_channel": st.integers(0, 4),
    "meter.producer_channel": st.integers(0, 4),
    "meter.shunt_ohms": st.lists(st.floats(-1, 2000) | st.integers(0, 3), min_size=2,
                                 max_size=4),
    "meter.averages": st.sampled_from([*config.AVERAGES, "auto", "Auto", 2]),
    "meter.bus_conversion_us": st.sampled_from([*config.CONVERSION_US, 100]),
    "meter.shunt_conversion_us": st.sampled_from([*config.CONVERSION_US, 100]),
    "wallet.backend": st.sampled_from([*backends.names(), "pyOTA"]),
    "wallet.node_url": st.sampled_from(["http://127.0.0.1:14265", "https://node.lan",
                                        "127.0.0.1:14265", "ftp://x", ""]),
    "wallet.seed": _seed,
    "wallet.receiver": _address,
    "wallet.tag": st.text(alphabet=TRYTE_ALPHABET + "a", max_size=30),
    "wallet.local_pow": st.sampled_from([True, False, "true", 1]),
    "wallet.iota": st.fixed_dictionaries({}, optional={
        "gas_margin": st.floats(0.5, 12), "max_budget_nanos": st.integers(0, 10**11),
        "gas_margni": st.just(1)}),
}


def _by_type(section: str, key: str) -> st.SearchStrategy[Any]:
    """Values of the right type, mostly in range: so that many documents load."""
    kind = config.Config.__dataclass_fields__.get(section)
    default = getattr(kind.default_factory(), key, None) if kind else None  # type: ignore[misc]
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(-1, 70)
    if isinstance(default, float):
        return st.floats(0.0, 200.0) | st.integers(0, 200)
    if isinstance(default, str):
        return st.text(max_size=10)
    return _scalars


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 6))):
        section, key = draw(st.sampled_from(_KEYS))
        if draw(st.integers(0, 19)) == 0:
            section = draw(_typo(section) | st.text(max_size=6))
        if draw(st.integers(0, 9)) == 0:
            key = draw(_typo(key) | st.text(max_size=6))
        good = _GOOD.get(f"{section}.{key}")
        if good is None:
            good = _by_type(section, key)
        value = draw(good if draw(st.integers(0, 7)) else _any_value)
        body = doc.setdefault(section, {})
        if isinstance(body, dict):
            body[key] = value
    if draw(st.integers(0, 29)) == 0:  # a whole section as a plain value
        doc[draw(st.sampled_from(list(config.SCHEMA)))] = draw(_scalars)
    return doc


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(v), repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):  # a TOML basic string: escape quotes, backslashes, controls
        return '"' + "".join(f"\\u{ord(c):04x}" if c in '"\\' or ord(c) < 0x20 or c == "\x7f"
                             else c for c in v) + '"'
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _to_toml(doc: dict[str, Any]) -> str:
    plain = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict)]
    tables = [f"[{_toml_key(k)}]\n" + "".join(f"{_toml_key(key)} = {_toml_value(x)}\n"
                                              for key, x in v.items())
              for k, v in doc.items() if isinstance(v, dict)]
    return "\n".join(plain) + "\n" + "\n".join(tables)


@given(doc=_documents(), mode=st.sampled_from([0o600, 0o600, 0o644, 0o640]),
       garbage=st.integers(0, 19).flatmap(
           lambda n: st.binary(min_size=1, max_size=40) if n == 0 else st.none()))
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_file_loads_or_fails_in_one_line_naming_the_file(
        tmp_path_factory: pytest.TempPathFactory, doc: dict[str, Any], mode: int,
        garbage: bytes | None) -> None:
    path = tmp_path_factory.getbasetemp() / "property.toml"
    text = _to_toml(doc)
    path.write_bytes(text.encode() + (garbage or b""))
    path.chmod(mode)
    seed = doc.get("wallet", {}).get("seed") if isinstance(doc.get("wallet"), dict) else None
    try:
        cfg = load(path)
    except ConfigError as err:
        event("rejected: " + (err.key.split(".")[0] or err.reason.split(":")[0][:20]))
        message = assert_one_line(err, path)
        if isinstance(seed, str) and len(seed) >= 20 and text.count(seed) == 1:
            assert seed not in message and seed not in repr(err) and err.value != seed
        return
    event("accepted" + (" with a seed" if cfg.wallet.seed else ""))
    assert isinstance(cfg, Config) and cfg.source == str(path)
    if garbage is None:
        for section, body in doc.items():
            for key, raw in body.items():
                got = getattr(getattr(cfg, section), key)
                if isinstance(raw, dict):  # a nested table ([wallet.iota])
                    got = {k: getattr(got, k) for k in raw}
                if (section, key) == ("serve", "allowed_hosts"):  # host names: any case
                    raw = [host.lower() for host in raw]
                assert got == (tuple(raw) if isinstance(raw, list) else raw)
    if cfg.wallet.seed:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert cfg.wallet.seed not in repr(cfg)


def test_amounts_a_round_could_owe_must_fit_the_ledger(tmp_path):
    from p2p_energy.config import load

    cfg = tmp_path / "c.toml"
    cfg.write_text("[round]\nlength_s = 86400\n[price]\nmax_price = 1000.0\n")
    with pytest.raises(ConfigError) as err:
        load(cfg)
    text = str(err.value)
    assert text.startswith(f"{cfg}: price.max_price = 1000.0: with meter.max_power_mw = 100000"
                           " and round.length_s = 86400, one round could owe 8.64e+21")
    assert "\n" not in text
    cfg.write_text("[round]\nlength_s = 1\n[price]\nmax_price = 5e4\n")  # fits one round,
    # but a century of them at the cap would overflow the sums of whole IOTA
    with pytest.raises(ConfigError, match="a century of rounds"):
        load(cfg)
    cfg.write_text("[round]\nlength_s = 86400\n[price]\nmax_price = 1000.0\n"
                   "[meter]\nmax_power_mw = 50\n")
    assert load(cfg).meter.max_power_mw == 50.0


def test_a_nul_in_a_file_name_is_a_one_line_error(tmp_path: Path) -> None:
    """Found by the property test above: os.stat and os.open raise ValueError for it."""
    path = write(tmp_path / "c.toml", '[wallet]\nseed_file = "a\\u0000b"\n')
    cfg = load(path)  # the seed file is only read when a wallet needs it
    message = _seed_error(cfg)
    assert "\n" not in message and "no file name holds a NUL character" in message
