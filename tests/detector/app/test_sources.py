"""Where the page's detections come from, without a browser: uploads checked, endpoints spoken to.

The endpoint tests use real sockets: nothing listening, and a server answering off-contract.
The real detector server is exercised in the browser tests (test_page.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from detector import config
from detector.__main__ import main
from detector.app.launch import PAGE, app_url, streamlit_command, streamlit_env
from detector.app.runs import RunSummary, compare_ap
from detector.app.sources import Endpoint, content_type, invocations_url, read_upload, sample_upload
from detector.errors import EndpointError, InvalidImageError
from tests.detector.app.support import free_port


def test_uploads_that_are_not_usable_images_are_refused_with_a_fix() -> None:
    with pytest.raises(InvalidImageError, match=r"notes\.txt is not a JPEG or PNG image") as error:
        read_upload("notes.txt", b"tomatoes, basil")
    assert error.value.fix == "upload a JPEG or PNG photo"
    with pytest.raises(InvalidImageError, match=r"big\.png is 0\.0 MiB, over the 0 MiB") as error:
        read_upload("big.png", b"x" * 11, max_bytes=10)
    assert "smaller image" in (error.value.fix or "")


def test_the_bundled_sample_is_a_jpeg_of_the_sample_size() -> None:
    name, data = sample_upload()
    assert name.endswith(".jpg") and content_type(data) == "image/jpeg"
    import io

    from PIL import Image

    assert max(Image.open(io.BytesIO(data)).size) == config.SAMPLE_SIZE
    assert sample_upload() == (name, data)  # deterministic


def test_endpoint_urls() -> None:
    assert invocations_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/invocations"
    assert invocations_url(" http://h:1/invocations/ ") == "http://h:1/invocations"
    for bad in ("localhost:8080", "ftp://h/x", ""):
        with pytest.raises(EndpointError, match="not an http"):
            invocations_url(bad)


def test_an_endpoint_nobody_listens_on_says_how_to_start_one() -> None:
    endpoint = Endpoint(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(EndpointError, match=r"cannot reach the endpoint .*Connection refused") as error:
        endpoint.predict(np.zeros((2, 2, 3), np.uint8), b"\x89PNG")
    assert "python -m detector serve" in (error.value.fix or "")


class _OffContract(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, bytes]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = self.answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def off_contract() -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    server = HTTPServer(("127.0.0.1", 0), _OffContract)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _OffContract.answers
    server.shutdown()
    server.server_close()


def test_endpoint_answers_are_checked_against_the_contract(off_contract: tuple[str, list[tuple[int, bytes]]]) -> None:
    url, answers = off_contract
    endpoint = Endpoint(url, timeout=10)
    image = np.zeros((2, 2, 3), np.uint8)
    detection = {"class_name": "rust", "class_id": 2, "box": [1, 2, 3, 4], "score": 0.5}
    answers[:] = [
        (200, json.dumps({"predictions": [[detection]]}).encode()),
        (400, json.dumps({"error": "body is not a JPEG or PNG image", "fix": "send an image"}).encode()),
        (200, b"<html>hello</html>"),
        (200, json.dumps({"predictions": [[{"label": "x"}]]}).encode()),
    ]
    assert endpoint.predict(image, b"\xff\xd8\xff").detections == [{**detection, "box": [1.0, 2.0, 3.0, 4.0]}]
    with pytest.raises(EndpointError, match="answered 400: body is not a JPEG") as error:
        endpoint.predict(image, b"x")
    assert error.value.fix == "send an image"
    with pytest.raises(EndpointError, match="did not answer with SageMaker"):
        endpoint.predict(image, b"x")
    with pytest.raises(EndpointError, match="without class_name"):
        endpoint.predict(image, b"x")


def test_compare_ap_rows_cover_both_runs_classes() -> None:
    a = RunSummary("1", None, "pip", "sha256:ab", "test", 0.1, 0.2, {"rust": 0.25, "blight": None}, {"rust": 0.5})
    b = RunSummary("2", None, "local", None, "test", 0.3, 0.4, {"rust": 0.125, "mildew": 0.75}, {})
    rows = compare_ap(a, b)
    assert [row["class"] for row in rows] == ["blight", "mildew", "rust"]
    assert rows[2] == {
        "class": "rust",
        "AP run 1": "0.250",
        "AP run 2": "0.125",
        "AP50 run 1": "0.500",
        "AP50 run 2": "n/a",
    }
    assert a.label().startswith("1 · pip · AP50 0.200")


def test_the_streamlit_command_and_environment() -> None:
    command = streamlit_command(host="0.0.0.0", port=9000, endpoint="http://h:1", python="py")
    assert command[:5] == ["py", "-m", "streamlit", "run", str(PAGE)]
    assert command[command.index("--server.port") + 1] == "9000"
    assert command[command.index("--browser.gatherUsageStats") + 1] == "false"
    assert command[-3:] == ["--", "--endpoint", "http://h:1"]
    assert "--" not in streamlit_command(python="py")
    env = streamlit_env({"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(":") == [str(config.PROJECT_ROOT), "/elsewhere"]
    assert app_url("0.0.0.0", 8501) == "http://127.0.0.1:8501"


def test_cli_app_refuses_a_folder_that_is_not_an_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["app", "--model-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not an export folder" in err[0] and err[1].startswith("  fix: ")


def test_the_page_keeps_streamlit_from_clearing_keras_after_each_rerun(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit clears Keras' session after every rerun, which empties TensorFlow's kernel cache (the
    next prediction sets its kernels up again: ~1 s instead of 15 ms). The page stops that."""
    import inspect

    import keras
    from streamlit.runtime.scriptrunner import script_runner

    from detector.app.sources import keep_tensorflow_warm

    cleared: list[bool] = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: cleared.append(True))
    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)
    # Where Streamlit calls its hook after a rerun, and what the hook does unless the page stops it.
    assert "_log_if_error(_clean_problem_modules)" in inspect.getsource(script_runner.ScriptRunner._run_script)
    script_runner._clean_problem_modules()
    assert cleared == [True]
    keep_tensorflow_warm()
    script_runner._clean_problem_modules()
    assert cleared == [True]


def test_the_page_runs_without_streamlits_gc_after_each_rerun() -> None:
    command = streamlit_command(host="127.0.0.1", port=8501)
    assert command[command.index("--runner.postScriptGC") + 1] == "false"
