"""`make serve`'s server: methods API Gateway does not route and malformed requests answer JSON,
and a port in use says which PORT= to pick instead of a traceback."""

from __future__ import annotations

import http.client
import json
import socket
import threading

import pytest


@pytest.fixture
def server():
    from handler.local import make_server

    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_an_unknown_method_is_a_json_405(server, method):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request(method, "/embed")
    response = connection.getresponse()
    assert response.status == 405
    assert response.getheader("content-type") == "application/json"
    assert "GET" in response.getheader("allow")
    error = json.loads(response.read())["error"]
    assert error["code"] == "method_not_allowed" and method in error["message"]
    connection.close()


def test_a_malformed_request_line_is_json(server):
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/9.9\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"505", head
    assert b"application/json" in head.lower()
    assert json.loads(body)["error"]["message"]


def test_a_port_in_use_names_the_port_to_pick(capsys):
    from handler.local import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"port {port}" in err and f"PORT={port + 1}" in err and "Traceback" not in err


def test_invoke_of_an_s3_event_without_credentials_says_what_it_needs(monkeypatch, capsys):
    from _handler_helpers import EVENTS

    from handler.local import main

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["invoke", str(EVENTS / "s3_put.json")]) == 1
    err = capsys.readouterr().err
    assert "AWS credentials" in err and "api_v2_embed.json" in err and "Traceback" not in err


def test_invoke_of_an_api_event_runs_offline(capsys):
    from _handler_helpers import EVENTS

    from handler.local import main

    assert main(["invoke", str(EVENTS / "api_v2_embed.json")]) == 0
    assert '"statusCode": 200' in capsys.readouterr().out  # after the log lines
