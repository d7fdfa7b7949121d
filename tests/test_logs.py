"""Journald detection, <N> prefixes on every line, and redaction of the seed."""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from p2p_energy import logs

SEED = "SEED" * 20 + "X"  # 81 trytes


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    secrets = set(logs._redactor._secrets)
    yield
    if logs._handler is not None:
        root.removeHandler(logs._handler)
        logs._handler = None
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._redactor._secrets = secrets
    logging.captureWarnings(False)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[TextIO, dict[str, str]]]:
    """A real file standing in for the journald stream, and the env that names it."""
    with open(tmp_path / "journal", "w+", encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        yield f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def _setup(verbose: bool, stream: TextIO, environ: dict[str, str]) -> logging.Handler:
    """``setup_logging``, then only its handler: pytest's capture handler would see
    (and on a logging bug, raise with) each record before ours redacts it."""
    handler = logs.setup_logging(verbose=verbose, stream=stream, environ=environ)
    logging.getLogger().handlers[:] = [handler]
    return handler


def _text(f: TextIO) -> str:
    f.flush()
    f.seek(0)
    return f.read()


def test_under_journal_matches_the_stream(journal: tuple[TextIO, dict[str, str]],
                                          tmp_path: Path) -> None:
    f, env = journal
    assert logs.under_journal(f, env)
    with open(tmp_path / "other", "w") as other:  # stderr redirected since: not journald
        assert not logs.under_journal(other, env)
    assert not logs.under_journal(f, {})
    assert not logs.under_journal(f, {"JOURNAL_STREAM": "garbage"})
    assert not logs.under_journal(io.StringIO(), env)  # no file descriptor at all


def test_journal_format_has_priorities_and_no_timestamp(
        journal: tuple[TextIO, dict[str, str]]) -> None:
    f, env = journal
    _setup(True, f, env)
    log = logging.getLogger("p2p_energy.test")
    log.debug("d")
    log.info("i %d", 1)
    log.warning("w")
    log.error("e")
    log.critical("c")
    assert _text(f).splitlines() == [
        "<7>p2p_energy.test: d", "<6>p2p_energy.test: i 1", "<4>p2p_energy.test: w",
        "<3>p2p_energy.test: e", "<2>p2p_energy.test: c"]


def test_every_traceback_line_keeps_the_priority(journal: tuple[TextIO, dict[str, str]]) -> None:
    f, env = journal
    _setup(False, f, env)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("p2p_energy").exception("round failed\nsecond line")
    lines = _text(f).splitlines()
    assert len(lines) > 4
    assert all(line.startswith("<3>") for line in lines)
    assert lines[0] == "<3>p2p_energy: round failed"
    assert lines[-1] == "<3>RuntimeError: boom"


def test_terminal_format_is_timestamped(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w+") as f:
        _setup(False, f, {})
        logging.getLogger("p2p_energy.x").debug("hidden")
        logging.getLogger("p2p_energy.x").warning("shown")
        text = _text(f)
    assert "hidden" not in text
    assert text.endswith(" WARNING p2p_energy.x: shown\n")
    assert text[:4].isdigit() and not text.startswith("<")


def test_setup_twice_replaces_the_handler() -> None:
    first = logs.setup_logging(verbose=False, stream=io.StringIO(), environ={})
    second = logs.setup_logging(verbose=True, stream=io.StringIO(), environ={})
    root = logging.getLogger()
    assert second in root.handlers and first not in root.handlers
    assert root.level == logging.DEBUG


def test_python_warnings_are_logged() -> None:
    out = io.StringIO()
    _setup(False, out, {})
    warnings.warn("deprecated thing", UserWarning, stacklevel=1)
    assert "deprecated thing" in out.getvalue()


@pytest.mark.parametrize("registered_before_setup", [True, False])
def test_seed_is_redacted_from_message_args_and_traceback(registered_before_setup: bool) -> None:
    out = io.StringIO()
    if registered_before_setup:
        logs.redact(SEED)
    _setup(True, out, {})
    if not registered_before_setup:
        logs.redact(SEED)
    log = logging.getLogger("p2p_energy.wallet")
    log.info("seed is %s", SEED)
    log.info(f"inline {SEED} too")
    log.info("100% literal percent, no args")
    try:
        raise ValueError(f"node said: bad seed {SEED}")
    except ValueError:
        log.exception("payment failed")
    log.warning("bad args %s %s", SEED)  # a logging bug must not print the seed either
    log.info("stack", stack_info=True, extra={"x": SEED})
    text = out.getvalue()
    assert SEED not in text
    assert "seed is <redacted>" in text
    assert "inline <redacted> too" in text
    assert "bad args %s %s (unformattable log arguments)" in text
    assert "100% literal percent" in text
    assert "ValueError: node said: bad seed <redacted>" in text


def test_redaction_reaches_other_handlers_after_ours() -> None:
    ours, theirs = io.StringIO(), io.StringIO()
    _setup(False, ours, {})
    logs.redact(SEED)
    logging.getLogger().addHandler(later := logging.StreamHandler(theirs))
    try:
        logging.getLogger("p2p_energy").error("%s", SEED)
    finally:
        logging.getLogger().removeHandler(later)
    assert SEED not in ours.getvalue() + theirs.getvalue()


def test_empty_secret_is_ignored() -> None:
    out = io.StringIO()
    _setup(False, out, {})
    logs.redact("")
    logging.getLogger("p2p_energy").info("unchanged")
    assert out.getvalue().endswith("p2p_energy: unchanged\n")


@pytest.mark.parametrize(("level", "priority"), [
    (logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3),
    (logging.CRITICAL, 2), (logging.INFO + 5, 6), (5, 7), (60, 2)])
def test_syslog_priority(level: int, priority: int) -> None:
    assert logs.syslog_priority(level) == priority
