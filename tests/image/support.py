"""Image-tier test support: tiny projects that carry the real docker/Dockerfile, and the docker
engine and registry .ci/docker-up starts (ENVTIERS_TEST_REGISTRY, ..._USER, ..._PASSWORD,
ENVTIERS_TEST_BASE_IMAGE)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO_ROOT

# A stand-in for the detector package: the image copies `detector/`, and `docker run IMAGE serve`
# runs `python -m detector serve`. The real server needs TensorFlow, which a tiny lock cannot carry;
# this one keeps SageMaker's contract (port 8080, GET /ping, POST /invocations).
TINY_DETECTOR = {
    "__init__.py": '"""Test stand-in for the detector package."""\nCODE_VERSION = 1\n',
    "__main__.py": textwrap.dedent(
        """
        import json
        import sys
        from http.server import BaseHTTPRequestHandler, HTTPServer

        import purepkg


        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._send(200 if self.path == "/ping" else 404, {"status": "ok"})

            def do_POST(self):
                if self.path != "/invocations":
                    return self._send(404, {"error": "not found"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(200, {"predictions": [len(x) for x in body["instances"]], "purepkg": purepkg.__version__})

            def _send(self, status, data):
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)


        if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
            HTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
        """
    ),
}


@dataclass(frozen=True)
class Infra:
    registry: str  # host:port
    user: str
    password: str
    base_image: str  # name@sha256:... in that registry

    def namespace(self) -> str:
        """A registry namespace of its own, so tags from other tests never collide."""
        return f"{self.registry}/t{uuid.uuid4().hex[:10]}"


def docker_ready() -> str | None:
    """None when docker and the test registry are usable, else the reason they are not."""
    if shutil.which("docker") is None:
        return "docker is not installed (CI runs .ci/docker-up)"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "the docker daemon is not running (CI runs .ci/docker-up)"
    missing = [
        name
        for name in (
            "ENVTIERS_TEST_REGISTRY",
            "ENVTIERS_TEST_REGISTRY_USER",
            "ENVTIERS_TEST_REGISTRY_PASSWORD",
            "ENVTIERS_TEST_BASE_IMAGE",
        )
        if not os.environ.get(name)
    ]
    if missing:
        return f'{", ".join(missing)} not set (eval "$(.ci/docker-up)" sets them)'
    return None


def infra_from_env() -> Infra:
    return Infra(
        registry=os.environ["ENVTIERS_TEST_REGISTRY"],
        user=os.environ["ENVTIERS_TEST_REGISTRY_USER"],
        password=os.environ["ENVTIERS_TEST_REGISTRY_PASSWORD"],
        base_image=os.environ["ENVTIERS_TEST_BASE_IMAGE"],
    )


def add_image_files(root: Path, *, registry: str, base_image: str) -> None:
    """The repository's real Dockerfile, entrypoint and .dockerignore, the tiny detector, and an
    [image] section naming the test registry and base."""
    (root / "docker").mkdir(parents=True, exist_ok=True)
    for name in ("Dockerfile", "entrypoint.sh"):
        shutil.copy2(REPO_ROOT / "docker" / name, root / "docker" / name)
    shutil.copy2(REPO_ROOT / ".dockerignore", root / ".dockerignore")
    package = root / "detector"
    package.mkdir(exist_ok=True)
    for name, text in TINY_DETECTOR.items():
        (package / name).write_text(text)
    settings = root / "envs" / "tiers.toml"
    settings.write_text(
        settings.read_text()
        + f'\n[image]\nregistry = "{registry}"\nrepository = "tiny"\nbase = "{base_image}"\ncode = ["detector"]\n'
    )


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def layers(reference: str) -> list[str]:
    """The image's layer diff ids, bottom first."""
    return list(json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", reference).stdout))


def remove_images(namespaces: list[str]) -> None:
    """Untag the images a test built under its registry namespaces (their layers go with the last
    tag; the shared base and cache stay)."""
    if not namespaces:
        return
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    mine = [ref for ref in listed if any(ref.startswith(f"{ns}/") for ns in namespaces)]
    if mine:
        docker("rmi", *mine, check=False)
