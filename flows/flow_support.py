"""What DetectorFlow's steps do beyond calling `detector/`: checks that fail fast with a clear
message, moving a training run between steps (and machines) as artifacts, and the evaluation card.

Imported inside steps, so the launching interpreter never loads TensorFlow.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from metaflow.exception import MetaflowException

DEPLOY_TARGETS = ("local", "sagemaker")
WANDB_MODES = ("auto", "online", "offline", "disabled")


class FlowInputError(MetaflowException):
    """A user mistake caught by the flow: printed as headline and fix, without a traceback."""

    headline = "DetectorFlow cannot run"

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message + (f"\n    fix: {fix}" if fix else ""))


def project_root() -> Path:
    """The checkout locally; the code package's folder in a remote task."""
    from detector.config import PROJECT_ROOT

    return PROJECT_ROOT


# -- start ---------------------------------------------------------------------------------------
def data_folder(data: str) -> Path:
    """The dataset as a local folder: `data` itself (relative to the project), or for s3://...
    a copy downloaded once per task into its temp dir (each remote task has its own disk)."""
    from detector.errors import DetectorError
    from detector.remote_data import download, is_s3

    if is_s3(data):
        try:
            return download(data)
        except DetectorError as error:
            raise FlowInputError(error.headline, fix=error.fix) from None
    folder = Path(data)
    return folder if folder.is_absolute() else project_root() / folder


def check_data(data: str) -> tuple[Path, int, int]:
    """(local data folder, train images, test images); FlowInputError when unusable."""
    from detector.annotations import load_plantdoc
    from detector.errors import DetectorError

    folder = data_folder(data)
    try:
        train, _ = load_plantdoc(folder, split="train")
        test, _ = load_plantdoc(folder, split="test")
    except DetectorError as error:
        raise FlowInputError(
            f"the dataset at {folder} is not usable: {error}",
            fix="generate the sample with `python -m detector sample` (make run does), or pass --data DIR "
            "with TRAIN/ and TEST/ in PlantDoc's layout",
        ) from None
    return folder, len(train), len(test)


def check_lock(tier: str | None) -> str:
    """`envtiers check` for the tier the task runs in: a stale lock stops the run here."""
    if not tier:
        return "no tier (--environment=local): the steps run in the launching interpreter, unchecked"
    from envtiers.check import check_project
    from envtiers.errors import EnvtiersError
    from envtiers.settings import load_project

    try:
        project = load_project(project_root())
        report = check_project(project, tiers=(tier,))
    except EnvtiersError as error:
        raise FlowInputError(error.headline, fix=error.fix) from None
    if report.problems:
        details = "\n".join(problem.render() for problem in report.problems)
        raise FlowInputError(
            f"the {tier} tier's lockfiles do not match envs/ (envtiers check):\n{details}",
            fix="run `make lock`, commit the lockfiles, and run again",
        )
    return f"{len(report.checked)} {tier} lockfile(s) consistent"


def check_choices(*, wandb_mode: str, deploy_target: str, sagemaker: dict[str, str]) -> str:
    """The W&B mode the run will use (resolved now, so every step agrees); FlowInputError else."""
    from detector.tracking import resolve_wandb_mode  # TensorFlow-free: start stays fast and quiet

    if wandb_mode not in WANDB_MODES:
        raise FlowInputError(f"unknown --wandb-mode {wandb_mode!r}", fix=f"use one of {', '.join(WANDB_MODES)}")
    if deploy_target not in DEPLOY_TARGETS:
        raise FlowInputError(
            f"unknown --deploy-target {deploy_target!r}", fix=f"use one of {', '.join(DEPLOY_TARGETS)}"
        )
    if deploy_target == "sagemaker":
        missing = [name for name in ("role_arn", "bucket", "image_uri") if not sagemaker.get(name)]
        if missing:
            flags = " ".join(f"--sagemaker-{name.replace('_', '-')} ..." for name in missing)
            raise FlowInputError(f"--deploy-target sagemaker needs {', '.join(missing)}", fix=f"pass {flags}")
    return resolve_wandb_mode(wandb_mode)  # type: ignore[arg-type]


def fail_if_injected(step_name: str) -> None:
    """DETECTOR_FAIL_AT=<step> makes that step fail: to try `resume` (unset it, then resume)."""
    if os.environ.get("DETECTOR_FAIL_AT") == step_name:
        raise RuntimeError(
            f"failure injected by DETECTOR_FAIL_AT={step_name}: unset it and resume from {step_name} "
            f"(make resume, or python flows/detector_flow.py --environment=... resume {step_name})"
        )


# -- a training run as artifacts -----------------------------------------------------------------
def pack_run(run_dir: Path) -> dict[str, Any]:
    """The files a later step needs to rebuild the model: run record, class map, best weights."""
    record = json.loads((run_dir / "run.json").read_text())
    return {
        "run.json": (run_dir / "run.json").read_bytes(),
        "class_map.json": (run_dir / "class_map.json").read_bytes(),
        f"checkpoints/{record['weights']}": (run_dir / "checkpoints" / record["weights"]).read_bytes(),
    }


def unpack_run(files: dict[str, bytes], run_dir: Path) -> Path:
    """Write `pack_run`'s files under run_dir (another step, a resumed run, another machine)."""
    for name, content in files.items():
        path = run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
    return run_dir


def run_dir_for(flow_name: str, run_id: str) -> Path:
    base = Path(os.environ.get("DETECTOR_RUNS_DIR", project_root() / "runs"))
    return base / flow_name / str(run_id)


def predictions_as_lists(result: Any, class_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """y_pred for a notebook: per test image, boxes (xyxy, model frame), class names, confidences."""
    return [
        {
            "boxes": detections.boxes.round(2).tolist(),
            "classes": [class_names[k] for k in detections.classes.tolist()],
            "confidences": [] if detections.scores is None else detections.scores.round(4).tolist(),
        }
        for detections in result.predictions
    ]


# -- the evaluation card -------------------------------------------------------------------------
def evaluation_card(result: Any, *, title: str, provenance: dict[str, Any] | None = None) -> list[Any]:
    """Card components: the COCO table, AP per class, the PR curves and sample detections, and
    where each step ran (`provenance`: the envtiers_provenance artifact)."""
    from metaflow.cards import Image, Markdown, Table

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    data = result.to_dict()
    components: list[Any] = [
        Markdown(f"# {title}"),
        Markdown("## COCO mAP"),
        Table(
            [
                [
                    cell(data["ap"]),
                    cell(data["ap50"]),
                    cell(data["ap75"]),
                    data["num_images"],
                    data["num_ground_truth"],
                    data["num_detections"],
                ]
            ],
            headers=["mAP@[.5:.95]", "AP50", "AP75", "images", "ground-truth boxes", "detections"],
        ),
        Markdown("## AP per class"),
        Table(
            [[name, cell(ap), cell(data["ap50_per_class"].get(name))] for name, ap in data["ap_per_class"].items()],
            headers=["class", "AP", "AP50"],
        ),
    ]
    if result.pr_curve_path is not None:
        components += [Markdown("## Precision-recall (IoU 0.5)"), Image(Path(result.pr_curve_path).read_bytes())]
    if result.sample_paths:
        components.append(Markdown("## Sample detections (red: predicted, green: ground truth)"))
        components += [Image(Path(path).read_bytes(), label=Path(path).stem) for path in result.sample_paths]
    if provenance:
        from envtiers.runtime import PROVENANCE_HEADERS, provenance_rows

        components.append(Markdown("## Provenance: the locked environment each step ran in"))
        components.append(Table(provenance_rows(provenance), headers=list(PROVENANCE_HEADERS)))
    return components


def png_bytes(image: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def keep_in_s3(path: Path, *, run: Any) -> str:
    """Upload ``path`` with Metaflow's S3 client under this run's prefix (METAFLOW_DATATOOLS_S3ROOT/
    <flow>/<run id>/, where ``S3(run=self)`` keeps a run's files); returns its s3:// URL."""
    from metaflow import S3

    with S3(run=run) as s3:
        return str(s3.put_files([(path.name, str(path))])[0][1])
