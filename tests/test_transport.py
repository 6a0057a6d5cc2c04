"""sync_core.storage.clients.make_transport: the environment is read once, unless a proxy needs requests' rules."""

from __future__ import annotations

import pytest

from sync_core.storage.clients import make_transport

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARS, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_without_a_proxy_the_environment_is_read_once(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/private-ca.pem")
    transport = make_transport(8)
    assert transport.session is not None and transport.session.trust_env is False
    # the private CA still applies to every request (test_oauth trusts Azurite's this way end to end)
    assert transport.connection_config.verify == "/etc/ssl/private-ca.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert make_transport(8).connection_config.verify is True


def test_a_configured_proxy_keeps_requests_per_request_rules(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    session = make_transport(8).session
    assert session is not None and session.trust_env is True  # proxies and NO_PROXY applied per request
