"""The node agents' /metrics: label escaping, one family's lines, the server and its errors."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import exposition


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        pytest.param("plain", "plain", id="plain"),
        pytest.param('say "hi"', 'say \\"hi\\"', id="double-quote"),
        pytest.param("C:\\tmp", "C:\\\\tmp", id="backslash"),
        pytest.param("two\nlines", "two\\nlines", id="newline"),
        pytest.param(7, "7", id="number"),
    ],
)
def test_label_value_escapes_what_the_format_asks(value, escaped):
    assert exposition.label_value(value) == escaped


def test_labels_keep_their_order_and_none_is_empty():
    assert exposition.labels(node="n1", pod='a"b') == '{node="n1",pod="a\\"b"}'
    assert exposition.labels() == ""


def test_family_lines_and_values():
    lines = exposition.family(
        "x_total", "counter", "Things.", [({"to": "a"}, 3), ({}, 2.0), ({"b": "1"}, 0.25), ({}, True)]
    )
    assert lines == [
        "# HELP x_total Things.",
        "# TYPE x_total counter",
        'x_total{to="a"} 3',
        "x_total 2",
        'x_total{b="1"} 0.25',
        "x_total 1",
    ]


def test_family_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match=r"^metric x: kind 'histogram' is not one of counter, gauge$"):
        exposition.family("x", "histogram", "X.", [])


def test_text_joins_families_with_a_final_newline():
    assert exposition.text([["a 1"], ["b 2", "c 3"]]) == "a 1\nb 2\nc 3\n"


def _get(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_serve_answers_metrics_with_what_render_returns_now():
    state = {"n": 0}

    def render():
        state["n"] += 1
        return f"scrapes {state['n']}\n"

    host, port = exposition.serve("127.0.0.1", 0, render)
    assert host == "127.0.0.1"
    url = f"http://{host}:{port}"
    assert _get(f"{url}/metrics") == (200, "text/plain; version=0.0.4", "scrapes 1\n")
    assert _get(f"{url}/metrics") == (200, "text/plain; version=0.0.4", "scrapes 2\n")
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(f"{url}/other")
    assert caught.value.code == 404


@pytest.mark.parametrize("port", [-1, 65536, "9100", True])
def test_serve_refuses_a_port_out_of_range(port):
    with pytest.raises(exposition.ListenError, match=r"^port .* is not a port number \(0 to 65535\)$"):
        exposition.serve("127.0.0.1", port, str)


def test_serve_names_the_address_and_port_it_cannot_bind():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(exposition.ListenError) as caught:
            exposition.serve("127.0.0.1", port, str)
    finally:
        taken.close()
    assert str(caught.value) == f"cannot listen on 127.0.0.1 port {port}: Address already in use"
