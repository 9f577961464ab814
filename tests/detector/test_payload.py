"""Request bodies to images, and the server's settings, without a server."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from detector import config
from detector.errors import RequestError, ServeError
from detector.serve import ServeSettings, accepts_json, json_depth, parse_invocation
from tests.detector.support import encode, leaf_image


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"5", 0),
        (b'{"instances": [[[[1, 2, 3]]]]}', 5),
        (b'{"instances": [{"b64": "[[[[[[[[[[["}]}', 3),  # brackets in strings do not nest
        (b'["\\"[[[[", [[]]]', 3),  # nor after an escaped quote
        (b"[" * 100_000, 100_000),  # unbalanced: counted, not parsed
    ],
)
def test_json_depth_counts_nesting_outside_strings(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (None, True),
        ("", True),
        ("application/json", True),
        ("*/*", True),
        ("application/*", True),
        ("text/html,application/xhtml+xml,*/*;q=0.8", True),
        ("application/json;q=0, */*", False),  # the most specific range decides
        ("image/png", False),
        ("text/csv, image/*", False),
        ("application/json;q=oops", False),
    ],
)
def test_accept_header(accept: str | None, ok: bool) -> None:
    assert accepts_json(accept) is ok


def test_instances_share_one_pixel_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    png = base64.b64encode(encode(leaf_image(60, 60, seed=1), "PNG")).decode()
    body = json.dumps({"instances": [{"b64": png}, {"b64": png}]}).encode()
    assert len(parse_invocation("application/json", body)) == 2
    monkeypatch.setattr(config, "MAX_REQUEST_PIXELS", 5000)
    message = "instance 1 is 60x60 pixels, over the 1,400 left of the request's 5,000 pixel limit"
    with pytest.raises(RequestError, match=message) as raised:
        parse_invocation("application/json", body)
    assert raised.value.status == 400


def test_settings_come_from_sagemakers_variables() -> None:
    assert ServeSettings.from_env({}) == ServeSettings()
    settings = ServeSettings.from_env(
        {
            config.SERVE_WORKERS_ENV: "3",
            config.SERVE_TIMEOUT_ENV: "20",
            config.SERVE_LOG_LEVEL_ENV: "10",
            config.SERVE_QUEUE_ENV: "4",
            config.SERVE_BACKLOG_ENV: "100",
        }
    )
    assert (settings.workers, settings.timeout, settings.log_level, settings.max_queue, settings.backlog) == (
        3,
        20,
        logging.DEBUG,
        4,
        100,
    )
    assert ServeSettings.from_env({config.SERVE_LOG_LEVEL_ENV: "warning"}).log_level == logging.WARNING


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (config.SERVE_WORKERS_ENV, "two", "SAGEMAKER_MODEL_SERVER_WORKERS='two' is not a whole number"),
        (config.SERVE_WORKERS_ENV, "0", "SAGEMAKER_MODEL_SERVER_WORKERS=0 is below 1"),
        (config.SERVE_TIMEOUT_ENV, "1.5", "SAGEMAKER_MODEL_SERVER_TIMEOUT='1.5' is not a whole number"),
        (config.SERVE_LOG_LEVEL_ENV, "LOUD", "SAGEMAKER_CONTAINER_LOG_LEVEL='LOUD' is not a log level"),
    ],
)
def test_unusable_settings_name_the_variable_and_the_fix(name: str, value: str, message: str) -> None:
    with pytest.raises(ServeError, match=message) as raised:
        ServeSettings.from_env({name: value})
    assert raised.value.fix and name in raised.value.fix
