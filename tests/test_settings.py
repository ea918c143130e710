"""Settings: TOCSIN_* variables, validated at start-up; a bad value stops the command with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.settings import SettingsError, load_settings
from tests.test_cli import clean_env, run_tocsin

# (variable, value, words the one-line message must hold)
INVALID = [
    ("TOCSIN_MAX_BODY_BYTES", "abc", "valid integer"),
    ("TOCSIN_DATABASE_URL", "mysql://x", "sqlite:///"),
    ("TOCSIN_SCORE_PUBLIC_EXPOSURE", "99", "less than or equal to 5"),
]


@pytest.fixture
def no_tocsin_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean slate: no TOCSIN_* variable from the machine running the tests."""
    for key in list(os.environ):
        if key.startswith("TOCSIN_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.mark.parametrize(("variable", "value", "words"), INVALID, ids=[v for v, _, _ in INVALID])
def test_invalid_value_stops_migrate_with_one_line_naming_it(
    tmp_path: Path, variable: str, value: str, words: str
) -> None:
    env = clean_env(**{"TOCSIN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", variable: value})
    result = run_tocsin("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{variable}:" in lines[0]
    assert words in lines[0]
    assert not (tmp_path / "x.db").exists()


def test_invalid_value_stops_serve_before_it_listens(tmp_path: Path) -> None:
    env = clean_env(TOCSIN_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", TOCSIN_LOG_LEVEL="loud")
    result = run_tocsin("serve", "--port", "1", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tocsin: invalid configuration: TOCSIN_LOG_LEVEL: "
        "Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"
    ]


def test_several_invalid_values_are_named_on_one_line(no_tocsin_env: pytest.MonkeyPatch) -> None:
    no_tocsin_env.setenv("TOCSIN_MAX_BODY_BYTES", "abc")
    no_tocsin_env.setenv("TOCSIN_DB_POOL_SIZE", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert "TOCSIN_MAX_BODY_BYTES:" in message and "TOCSIN_DB_POOL_SIZE:" in message


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("TOCSIN_SCORE_ENVIRONMENT_FACTORS", "prod=2", "must be a JSON object"),
        ("TOCSIN_SCORE_ENVIRONMENT_FACTORS", "[1, 2]", "must be a JSON object"),
        ("TOCSIN_SCORE_SENSITIVITY_FACTORS", '{"high": 9}', "between 0 and 5"),
        ("TOCSIN_SCORE_CONFIDENCE_FLOOR", "-1", "greater than or equal to 0"),
        ("TOCSIN_LOG_JSON", "maybe", "valid boolean"),
        ("TOCSIN_MAX_BATCH_FINDINGS", "0", "greater than or equal to 1"),
        ("TOCSIN_DATABASE_URL", "not a url", "sqlite:///"),
        ("TOCSIN_BOOTSTRAP_TOKEN", "admin", "at least 24 characters"),
    ],
)
def test_invalid_values_are_named_with_what_is_wrong(
    no_tocsin_env: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    no_tocsin_env.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert words in message
    assert "\n" not in message


def test_secrets_in_bad_values_are_not_repeated(no_tocsin_env: pytest.MonkeyPatch) -> None:
    no_tocsin_env.setenv("TOCSIN_DATABASE_URL", "mysql://admin:hunter2@db.internal/tocsin")
    no_tocsin_env.setenv("TOCSIN_BOOTSTRAP_TOKEN", "tcn_short9")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "TOCSIN_DATABASE_URL" in str(caught.value) and "TOCSIN_BOOTSTRAP_TOKEN" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "tcn_short9" not in str(caught.value)


def test_defaults_need_no_environment(no_tocsin_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///var/tocsin.db"
    assert settings.is_sqlite
    assert settings.bootstrap_token is None
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.log_level == "INFO"
    assert settings.scoring.public_exposure == 1.5


def test_environment_variables_are_read_and_parsed(no_tocsin_env: pytest.MonkeyPatch) -> None:
    no_tocsin_env.setenv("TOCSIN_DATABASE_URL", "postgresql+asyncpg://u@h/db")
    no_tocsin_env.setenv("TOCSIN_MAX_BODY_BYTES", "2048")
    no_tocsin_env.setenv("TOCSIN_LOG_LEVEL", "debug")
    no_tocsin_env.setenv("TOCSIN_LOG_JSON", "false")
    no_tocsin_env.setenv("TOCSIN_SCORE_PUBLIC_EXPOSURE", "2.5")
    no_tocsin_env.setenv("TOCSIN_SCORE_ENVIRONMENT_FACTORS", '{"Prod": 2, "dev": 0.5}')
    no_tocsin_env.setenv("TOCSIN_SCORE_ENVIRONMENT_TAGS", "Env, tier")
    settings = load_settings()
    assert not settings.is_sqlite
    assert (settings.max_body_bytes, settings.log_level, settings.log_json) == (2048, "DEBUG", False)
    assert settings.scoring.public_exposure == 2.5
    assert settings.scoring.environment_factors == {"prod": 2.0, "dev": 0.5}
    assert settings.scoring.environment_tags == ["env", "tier"]


def test_explicit_values_win_over_the_environment(no_tocsin_env: pytest.MonkeyPatch) -> None:
    no_tocsin_env.setenv("TOCSIN_DATABASE_URL", "sqlite:///from-env.db")
    assert load_settings(database_url="sqlite:///given.db").database_url == "sqlite:///given.db"


def test_bootstrap_token_is_kept_secret(no_tocsin_env: pytest.MonkeyPatch) -> None:
    no_tocsin_env.setenv("TOCSIN_BOOTSTRAP_TOKEN", "tcn_operator-chosen-value")
    settings = load_settings()
    assert isinstance(settings.bootstrap_token, SecretStr)
    assert settings.bootstrap_token.get_secret_value() == "tcn_operator-chosen-value"
    assert "tcn_operator-chosen-value" not in repr(settings)
    assert "tcn_operator-chosen-value" not in str(settings.model_dump())


def test_loading_settings_has_no_side_effects(no_tocsin_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_tocsin_env.chdir(tmp_path)
    load_settings()
    assert list(tmp_path.iterdir()) == []


def test_outbound_request_urls_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs each URL at INFO; URLs can carry secrets (SNS tokens, webhook paths)."""
    import logging
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    from app.logs import configure_logging

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configure_logging("INFO", as_json=True)
    secret_url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/XXXXSECRETXXXX"
    httpx_logger = logging.getLogger("httpx")
    httpx_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO), httpx.Client(timeout=5) as client:
            assert client.get(secret_url).status_code == 404
    finally:
        httpx_logger.removeHandler(caplog.handler)
        server.shutdown()
    assert "XXXXSECRETXXXX" not in caplog.text
