"""Settings: values that cannot work are refused when they are read, and the settings read
outside the app (by the server's HTTP protocol) come from the same place as the app's."""

import asyncio

import pytest
from pydantic import ValidationError
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.config import Settings, get_settings
from app.server.header_deadline import HeaderTimeoutProtocol


async def _no_app(scope, receive, send) -> None:  # the protocol is all these tests build
    raise AssertionError("no request is sent")


def test_header_deadline_is_the_settings_header_timeout(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLAIMLEDGER_HEADER_TIMEOUT_SECONDS", "2.5")
    get_settings.cache_clear()
    loop = asyncio.new_event_loop()
    try:
        config = Config(app=_no_app, http=HeaderTimeoutProtocol, ws="none", log_config=None)
        protocol = HeaderTimeoutProtocol(config=config, server_state=ServerState(),
                                         app_state={}, _loop=loop)
        assert protocol.timeout == 2.5
    finally:
        loop.close()
        get_settings.cache_clear()


def test_sqlite_cache_setting_must_be_positive():
    with pytest.raises(ValidationError):
        Settings(sqlite_cache_kib=-5)


def test_settings_instance_timeout_shorter_than_two_heartbeats_is_refused():
    with pytest.raises(ValueError, match="at least twice"):
        Settings(instance_heartbeat_seconds=5, instance_timeout_seconds=8)
