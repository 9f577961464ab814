"""The detector's exceptions: one root, each subclass renders its own message from what it holds.

Only ``python -m detector`` (``detector/__main__.py``) turns an exception into an exit code;
library code raises and never calls ``sys.exit``. Metaflow steps let them propagate: the
headline is the first line a user reads.
"""

from __future__ import annotations

import os
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and found a problem
EXIT_BAD_INPUT = 2  # the command could not run on what it was given
# detector.config.CSV_COLUMNS, repeated: this module imports nothing of the package.
_CSV_HEADER = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


class DetectorError(Exception):
    """Root of every error a user can see: ``headline`` is one line, ``fix`` what repairs it."""

    exit_code = EXIT_FAILED

    def __init__(self, headline: str, *, fix: str | None = None) -> None:
        super().__init__(headline)
        self.headline = headline
        self.fix = fix

    def render(self) -> str:
        text = f"detector: error: {self.headline}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class InputError(DetectorError):
    """What the user gave (a folder, an option) cannot be used as it is."""

    exit_code = EXIT_BAD_INPUT


class DatasetError(InputError):
    """A dataset cannot be read: its layout, an annotation file or an image is wrong or missing."""


class LayoutError(DatasetError):
    def __init__(self, root: Path, problem: str) -> None:
        super().__init__(
            f"{root}: {problem}",
            fix="point at a PlantDoc-layout folder (TRAIN/, TEST/ of JPG + VOC XML, or "
            f"train_labels.csv/test_labels.csv), or make one with `python -m detector sample --out {root}`",
        )
        self.root = root


class AnnotationError(DatasetError):
    """An annotation file (or one CSV row, or one COCO entry) that cannot be parsed."""

    def __init__(self, where: str, problem: str, *, fix: str | None = None) -> None:
        super().__init__(
            f"{where}: {problem}",
            fix=fix
            or "correct or remove that file: PlantDoc's layout is Pascal VOC XML per image, or a labels CSV "
            f"with the header {','.join(_CSV_HEADER)}",
        )
        self.where = where
        self.problem = problem


class MissingImageError(DatasetError):
    def __init__(self, annotation: str, folder: Path, tried: tuple[str, ...]) -> None:
        shown = ", ".join(tried[:3]) + (", ..." if len(tried) > 3 else "")
        super().__init__(
            f"{annotation}: no image for it in {folder} (looked for {shown})",
            fix="put the image beside its annotation under that name, or remove the annotation",
        )
        self.annotation = annotation
        self.folder = folder
        self.tried = tried


class UnreadableImageError(DatasetError):
    def __init__(self, image: Path, problem: str) -> None:
        super().__init__(
            f"{image}: not a readable image ({problem})",
            fix="replace it with the JPEG or PNG it should be (a partial download or copy?), or remove it "
            "and its annotation",
        )
        self.image = image


class UnknownClassError(DatasetError):
    def __init__(self, label: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"class {label!r} is not in the class map ({len(known)} classes: {', '.join(known[:5])}"
            f"{', ...' if len(known) > 5 else ''})",
            fix="build the class map from every split that is used with it",
        )
        self.label = label


class EmptyDatasetError(DatasetError):
    """A split without one usable image; the headline names the first reason one was skipped."""

    def __init__(self, headline: str, *, fix: str | None = None) -> None:
        super().__init__(
            headline,
            fix=fix
            or "repair the files the first skipped reason names (or point --data at another folder); "
            "`python -m detector sample --out DIR` writes a dataset that loads",
        )


class SampleError(InputError):
    """The sample generator was asked for something it cannot make, or where it must not write."""


class ExportError(InputError):
    """A model cannot be exported as asked (the target folder, a mismatched class map or weights)."""


class ExportFormatError(InputError):
    """A folder or archive that should hold an export does not (or holds an unknown version)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(
            f"{where}: {problem}",
            fix="point at a folder written by `python -m detector export` (or SageMaker's /opt/ml/model "
            "extracted from its model.tar.gz); re-export models made by other versions",
        )
        self.where = where
        self.problem = problem


class InvalidImageError(InputError):
    """An image given for prediction is not one: wrong bytes, shape, type, or no pixels."""


class UnreadableModelError(InputError):
    """A model folder whose files this user cannot read (a root-owned 0700 folder in a container)."""

    def __init__(self, folder: Path, unreadable: list[str]) -> None:
        shown = ", ".join(unreadable[:3]) + (f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
        super().__init__(
            f"{folder}: not readable by this user (uid {os.getuid()}): {shown}",
            fix=f"make it readable for every user: chmod -R a+rX {folder} (exports written by "
            "`python -m detector export` are 0755/0644, as model.tar.gz extracts)",
        )
        self.folder = folder
        self.unreadable = unreadable


class ServeError(InputError):
    """The server cannot start as configured (the port, the host, the model folder)."""


class DeployError(DetectorError):
    """A deployment step failed: the cloud call, the local server, or its smoke test."""


class DeployTimeoutError(DeployError):
    pass


class RequestError(InputError):
    """An HTTP request the server refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, headline: str, *, fix: str | None = None) -> None:
        super().__init__(headline, fix=fix)
        self.status = status


class FetchError(DetectorError):
    """A dataset download or unpack did not complete; nothing half-written is left in place."""


class ChecksumError(FetchError):
    def __init__(self, what: str, expected: str, found: str) -> None:
        super().__init__(
            f"{what}: sha256 {found}, expected {expected}",
            fix="the download was deleted: run the same command again; if it keeps failing, the archive "
            "changed upstream: check it, then pass --sha256 with the digest you trust",
        )
        self.expected = expected
        self.found = found


class AppError(DetectorError):
    """The front end cannot show what was asked: no trained run, an unknown run, a failing endpoint."""


class NoRunError(AppError):
    def __init__(self, flow_name: str) -> None:
        super().__init__(
            f"no successful {flow_name} run yet: there is no trained model to show",
            fix="run `make run` (trains the small test model on the bundled sample), then reload this page; "
            "or choose an endpoint URL or an export folder",
        )


class EndpointError(AppError):
    """An endpoint URL that cannot be reached, refuses the image, or does not speak /invocations."""
