"""backend = "iota" at the command line: config, key files, wallet new/address, lazy imports."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2p_energy.config import ConfigError, build, load, load_seed
from p2p_energy.wallet.iota_backend import IotaWalletConfig
from p2p_energy.wallet.iota_keys import parse_secret

from support.iota_fixtures import PAYER_KEY, RECEIVER

MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p2p_energy", *args], capture_output=True,
                          text=True, timeout=60, **kwargs)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def iota_config(tmp_path: Path, secret: str = "", extra: str = "") -> Path:
    key = write(tmp_path / "key", secret or PAYER_KEY.export() + "\n")
    return write(tmp_path / "c.toml", f'[wallet]\nbackend = "iota"\nseed_file = "{key}"\n'
                                      f'receiver = "{RECEIVER}"\n{extra}')


# -- config

def test_iota_defaults_and_its_own_table() -> None:
    cfg = build({"wallet": {"backend": "iota", "receiver": RECEIVER.upper().replace("0X", "0x")}})
    assert cfg.wallet.receiver == RECEIVER  # stored lower-case
    assert cfg.wallet.node_url == "http://127.0.0.1:9000"
    assert cfg.wallet.min_payment == 200_000  # 0.2 IOTA: a ~0.002 IOTA fee is 1 %
    assert cfg.wallet.iota == IotaWalletConfig(gas_margin=1.5, max_budget_nanos=50_000_000)
    legacy = build({"wallet": {"backend": "pyota"}})
    assert legacy.wallet.node_url == "http://127.0.0.1:14265" and legacy.wallet.min_payment == 1
    set_here = build({"wallet": {"backend": "iota", "min_payment": 7, "node_url": "https://n",
                                 "iota": {"gas_margin": 2, "max_budget_nanos": 10**7}}})
    assert (set_here.wallet.min_payment, set_here.wallet.node_url) == (7, "https://n")
    assert set_here.wallet.iota == IotaWalletConfig(2.0, 10**7)


@pytest.mark.parametrize(("body", "message"), [
    ('[wallet]\nbackend = "iota"\nreceiver = "' + "A" * 81 + '"\n',
     'wallet.receiver = "' + "A" * 81 + '": must be an IOTA address: 0x followed by 64 hex'
     ' digits with backend = "iota"'),
    ('[wallet]\nbackend = "pyota"\nreceiver = "' + RECEIVER + '"\n',
     f'wallet.receiver = "{RECEIVER}": must be an IOTA address: 81 trytes, or 90 with its'
     ' checksum (A-Z, 9) with backend = "pyota" (0x addresses are for backend = "iota")'),
    ('[wallet]\nreceiver = "0x' + "ab" * 31 + '"\n',
     'wallet.receiver = "0x' + "ab" * 31 + '": must be an IOTA address: 0x followed by 64'
     ' hex digits'),
    ('[wallet.iota]\ngas_margn = 2\n', 'wallet.iota.gas_margn: unknown key (did you mean'
     ' "gas_margin"?)'),
    ('[wallet.iota]\ngas_margin = 0.5\n', "wallet.iota.gas_margin = 0.5: must be at least 1"
     " and at most 10"),
    ('[wallet]\niota = 3\n', "wallet.iota: must be a table"),
    ('[wallet]\nmin_payment = 0\n', "wallet.min_payment = 0: must be between 1 and"),
])
def test_iota_config_errors_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path / "c.toml", body)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    assert "\n" not in str(err.value)


EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def _example_under_iota(tmp_path: Path, min_payment_line: str = "") -> Path:
    """config.example.toml as an owner fills it in for today's network, pointed at a port
    where no node answers (``check`` offline)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = write(tmp_path / "key", PAYER_KEY.export() + "\n")
    text = (EXAMPLE.read_text()
            .replace('backend = "pyota"', 'backend = "iota"')
            .replace('# node_url = "https://api.testnet.iota.cafe"',
                     f'node_url = "http://127.0.0.1:{port}"')
            .replace('receiver = ""', f'receiver = "{RECEIVER}"')
            .replace('seed_file = ""', f'seed_file = "{key}"')
            .replace('path = "/var/lib/p2p-energy/ledger.db"',
                     f'path = "{tmp_path / "ledger.db"}"'))
    if min_payment_line:
        text = text.replace("# min_payment = 200000", min_payment_line)
    return write(tmp_path / "config.toml", text, 0o644)


def test_the_example_config_under_backend_iota_keeps_fees_at_one_percent(tmp_path: Path) -> None:
    path = _example_under_iota(tmp_path)
    assert load(path).wallet.min_payment == 200_000  # the backend's default, not 1
    out = cli("check", "-c", str(path))
    lines = out.stdout.splitlines()
    assert any(line.startswith("FAIL node http://127.0.0.1:") for line in lines), out.stdout
    assert not [line for line in lines if "min_payment" in line], out.stdout


def test_check_offline_warns_when_min_payment_lets_fees_pass_one_percent(tmp_path: Path) -> None:
    path = _example_under_iota(tmp_path, "min_payment = 1")
    out = cli("check", "-c", str(path))
    warn = [line for line in out.stdout.splitlines()
            if line.startswith("warn ") and not line.startswith("warn clock:")]  # may: no NTP
    assert warn == ["warn wallet.min_payment = 1 (0.000001 IOTA): fees are 200000.0 % of such"
                    " a payment; set at least 200000 to keep them at or below 1 % (the typical"
                    " fee of 0.002 IOTA: the node was not asked)"], out.stdout
    (tmp_path / "key").unlink()  # no key either: the warning still comes
    out = cli("check", "-c", str(path))
    assert "FAIL wallet key:" in out.stdout
    assert "warn wallet.min_payment = 1 " in out.stdout, out.stdout


def test_keys_come_from_a_file_the_config_or_the_credential(tmp_path: Path) -> None:
    cfg = load(iota_config(tmp_path))
    assert parse_secret(load_seed(cfg, check=parse_secret)).address == PAYER_KEY.address
    in_toml = write(tmp_path / "t.toml", f'[wallet]\nbackend = "iota"\nseed = "{MNEMONIC}"\n')
    secret = load_seed(load(in_toml), check=parse_secret)
    assert parse_secret(secret).address == parse_secret(MNEMONIC).address
    creds = tmp_path / "creds"
    creds.mkdir()
    write(creds / "seed", f"  {MNEMONIC}\n\n", 0o640)  # systemd's ACL mask shows as group bits
    bare = load(write(tmp_path / "b.toml", '[wallet]\nbackend = "iota"\n'))
    secret = load_seed(bare, environ={"CREDENTIALS_DIRECTORY": str(creds)}, check=parse_secret)
    assert secret == MNEMONIC


@pytest.mark.parametrize(("secret", "reason"), [
    (MNEMONIC.replace("yellow", "year"), "is not a valid mnemonic: it has a wrong checksum"),
    (PAYER_KEY.export()[:-2] + PAYER_KEY.export()[-1] + PAYER_KEY.export()[-2],
     "is not a valid iotaprivkey: it has a wrong bech32"),
    ("A" * 81, "is neither an iotaprivkey1... private key nor a 12- or 24-word mnemonic"),
    ("\n", "is empty"),
])
def test_a_bad_key_file_is_one_line_never_showing_the_key(tmp_path: Path, secret: str,
                                                           reason: str) -> None:
    cfg = load(iota_config(tmp_path, secret=secret))
    with pytest.raises(ConfigError) as err:
        load_seed(cfg, check=parse_secret)
    message = str(err.value)
    assert reason in message and "wallet.seed_file" in message and "\n" not in message
    for part in secret.split():
        assert len(part) < 8 or part not in message


def test_a_shared_key_file_is_refused(tmp_path: Path) -> None:
    cfg = load(iota_config(tmp_path))
    (tmp_path / "key").chmod(0o644)
    with pytest.raises(ConfigError, match="is readable by group and others"):
        load_seed(cfg, check=parse_secret)


# -- wallet new / address

def test_wallet_new_writes_a_private_key_and_prints_only_the_address(tmp_path: Path) -> None:
    out = cli("wallet", "new", "-o", str(tmp_path / "k"),
              preexec_fn=lambda: os.umask(0))  # 0600 whatever the umask
    assert out.returncode == 0, out.stderr
    key = (tmp_path / "k").read_text().strip()
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    address = parse_secret(key).address
    assert out.stdout == address + "\n" and key not in out.stdout + out.stderr
    again = cli("wallet", "new", "-o", str(tmp_path / "k"))
    assert again.returncode == 1 and (tmp_path / "k").read_text().strip() == key
    assert again.stderr == f"p2p-energy: {tmp_path / 'k'}: exists already; not overwriting a" \
        " key file\n"
    missing = cli("wallet", "new", "-o", str(tmp_path / "no" / "k"))
    assert missing.returncode == 1 and "cannot create: No such file" in missing.stderr


def test_wallet_address_prints_the_configured_address(tmp_path: Path) -> None:
    out = cli("wallet", "address", "-c", str(iota_config(tmp_path)))
    assert out.returncode == 0 and out.stdout == PAYER_KEY.address + "\n", out.stderr
    assert PAYER_KEY.export() not in out.stdout + out.stderr
    bad = cli("wallet", "address", "-c", str(iota_config(tmp_path, secret="zebra zoo " * 6)))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "is not a valid mnemonic: it has a wrong checksum" in bad.stderr
    legacy = write(tmp_path / "l.toml", '[wallet]\nbackend = "pyota"\n')
    out = cli("wallet", "address", "-c", str(legacy))
    assert out.returncode == 2
    assert 'wallet address needs backend = "iota", not "pyota"' in out.stderr


def test_nothing_heavy_is_imported_before_the_payer_opens_the_wallet(tmp_path: Path) -> None:
    # PyNaCl is no longer among them: the meter signs each round's log checkpoint with it.
    cfg = iota_config(tmp_path, extra='[meter]\nsensor = "simulated"\n')
    code = ("import sys\n"
            "from p2p_energy import config\n"
            "from p2p_energy.commands import cli\n"
            "from p2p_energy.runtime import build, daemon\n"
            f"cfg = config.load({str(cfg)!r})\n"
            "build.build_sensor(cfg); opener = build.wallet_opener(cfg)\n"
            "heavy = {'http.client', 'ssl', 'iota'} & set(sys.modules)\n"
            "assert not heavy, heavy\n"
            "wallet = opener()\n"
            "assert wallet.backend == 'iota'\n"
            "print(wallet.address)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == PAYER_KEY.address, out.stderr


def test_the_key_never_appears_in_output_or_ledger(tmp_path: Path, iota_node) -> None:
    """Pay with a mnemonic, verbose; then every command and error path: no trace of it."""
    from support.iota_daemon import read_payments

    mnemonic_key = parse_secret(MNEMONIC)
    iota_node.fund(mnemonic_key.address, 10**10)
    trace = write(tmp_path / "t.csv", "t_s,consumer_mw,producer_mw\n0,500,500\n5,500,500\n")
    cfg = iota_config(tmp_path, secret=MNEMONIC + "\n", extra=(
        f'node_url = "{iota_node.url}"\nmin_payment = 10\npoll_s = 0.2\n'
        f'[meter]\nsensor = "replay"\nreplay_file = "{trace}"\nsample_interval_s = 0.05\n'
        f'[round]\nlength_s = 1\n[ledger]\npath = "{tmp_path / "ledger.db"}"\n'))
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", "run", "-v", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                r.status == "confirmed" for r in read_payments(tmp_path / "ledger.db")[0]):
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    outputs = [out, err]
    assert proc.returncode == 0, err
    assert iota_node.balance(RECEIVER) > 0, "no payment was made: the test would prove nothing"
    assert "sample:" in err or "DEBUG" in err  # the most verbose output was searched
    for args in (["check", "-c", str(cfg)], ["ledger", "-c", str(cfg), "--json"],
                 ["ledger", "-c", str(cfg)], ["wallet", "address", "-c", str(cfg)]):
        done = cli(*args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs += [done.stdout, done.stderr]
    # Error paths that handle the key: shared key file, key in a shared config, a
    # mistyped mnemonic, a misspelt key holding it.
    (tmp_path / "key").chmod(0o644)
    outputs += [cli("check", "-c", str(cfg)).stdout]
    for body, mode in ((f'[wallet]\nbackend = "iota"\nseed = "{MNEMONIC}"\n', 0o644),
                       (f'[wallet]\nbackend = "iota"\nseed = "{MNEMONIC[:-1]}"\n'
                        f'receiver = "{RECEIVER}"\n', 0o600),
                       (f'[wallet]\nbackend = "iota"\nsed = "{MNEMONIC}"\n', 0o600)):
        bad = write(tmp_path / "bad.toml", body, mode)
        done = cli("run", "-c", str(bad))
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        outputs += [done.stdout, done.stderr]
    everything = "\n".join(outputs)
    for secret in (MNEMONIC, MNEMONIC[:40], mnemonic_key.private_key.hex(),
                   mnemonic_key.export()):
        assert secret not in everything
        for f in tmp_path.glob("ledger.db*"):
            assert secret.encode() not in f.read_bytes()
