"""A small synthetic dataset in PlantDoc's layout: the default data of ``make run`` and the tests.

Three classes of "leaf spot" that differ in both colour and shape (a blue square, a red circle,
a yellow triangle, each with a dark outline) lie on a textured green "leaf": a few objects per
image, a sixth to a third of the image's shorter side across, never overlapping. A small
RetinaNet separates them after a few CPU minutes. Images are square or 4:3 (either way up), so
the letterbox path of the pipeline is exercised.

The layout is the release's: ``TRAIN/`` and ``TEST/`` with one JPEG and one Pascal VOC XML per
image, ``train_labels.csv`` and ``test_labels.csv``, plus ``sample.json`` (the parameters; a
second call with the same ones returns at once).

Determinism: the same seed gives byte-identical files. Every random draw comes from streams
whose output Python and NumPy fix (``random.Random`` seeded with a string, ``PCG64.random_raw``
read little-endian), and JPEGs are written with a fixed quality and subsampling, no metadata.
The JPEG bytes depend on Pillow's libjpeg build, so compare them within one environment.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from detector import config
from detector.errors import SampleError

# Bump when the drawing changes: a sample made by another version is regenerated.
GENERATOR_VERSION = 1
MANIFEST = "sample.json"
MANIFEST_FORMAT_VERSION = 1
JPEG_QUALITY = 95
# Object sides as fractions of the image's shorter side, and objects per image: large and few
# enough that a small RetinaNet at 128 px localises them after a few CPU minutes.
OBJECT_SIDE = (0.17, 0.34)
OBJECTS_PER_IMAGE = (2, 4)


@dataclass(frozen=True)
class SpotClass:
    name: str
    shape: Literal["circle", "square", "triangle"]
    colour: tuple[int, int, int]


# Names sort in this order, so their ids are 0, 1, 2.
CLASSES = (
    SpotClass("blue square spot", "square", (40, 70, 225)),
    SpotClass("red circle spot", "circle", (220, 30, 30)),
    SpotClass("yellow triangle spot", "triangle", (250, 225, 40)),
)


@dataclass(frozen=True)
class SampleSummary:
    root: Path
    images: dict[str, int]  # per split
    boxes: dict[str, int]  # per split
    class_boxes: dict[str, int]  # per class, both splits
    reused: bool = False

    def line(self) -> str:
        verb = "up to date" if self.reused else "wrote"
        splits = ", ".join(f"{s} {self.images[s]} images / {self.boxes[s]} boxes" for s in self.images)
        return f"{verb} {self.root}: {splits}, {len(self.class_boxes)} classes"


@dataclass(frozen=True)
class _Object:
    spot: SpotClass
    box: tuple[int, int, int, int]  # xyxy, exclusive max


def generate_sample(
    out: Path,
    *,
    images: int = config.SAMPLE_IMAGES,
    seed: int = config.SAMPLE_SEED,
    size: int = config.SAMPLE_SIZE,
    test_fraction: float = config.SAMPLE_TEST_FRACTION,
) -> SampleSummary:
    """Write the sample dataset into ``out`` (created; replaced if it holds an older sample).

    ``images`` counts both splits; ``size`` is the longer side in pixels. Returns what was
    written (or found up to date). Raises SampleError for bad parameters, or when ``out``
    holds files that are not a sample: those are never deleted.
    """
    out = Path(out)
    if images < 2:
        raise SampleError(f"--images must be at least 2 (one per split), got {images}")
    if not 64 <= size <= 4096:
        raise SampleError(f"--size must be between 64 and 4096 pixels, got {size}")
    n_test = min(images - 1, max(1, round(images * test_fraction)))
    params = {"generator-version": GENERATOR_VERSION, "seed": seed, "images": images, "size": size, "test": n_test}
    existing = _read_manifest(out)
    if existing is not None and existing.get("parameters") == params and _complete(out):
        return _summary(out, existing, reused=True)
    if existing is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SampleError(
            f"{out} exists and is not a sample dataset (no {MANIFEST})",
            fix="give --out a new or empty folder: the generator does not delete what it did not write",
        )

    # Written beside the target and moved into place at the end: never half a dataset.
    staging = out.resolve().with_name(f".{out.resolve().name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    manifest = _write(staging, params, n_train=images - n_test)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    return _summary(out, manifest, reused=False)


def _read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format-version") == MANIFEST_FORMAT_VERSION else None


def _complete(out: Path) -> bool:
    return all((out / name).exists() for name in (*config.SPLIT_DIRS.values(), *config.LABEL_CSVS.values()))


def _summary(out: Path, manifest: dict[str, Any], *, reused: bool) -> SampleSummary:
    return SampleSummary(
        root=out,
        images={s: manifest["splits"][s]["images"] for s in config.SPLIT_DIRS},
        boxes={s: manifest["splits"][s]["boxes"] for s in config.SPLIT_DIRS},
        class_boxes=dict(manifest["class-boxes"]),
        reused=reused,
    )


def _write(root: Path, params: dict[str, int], *, n_train: int) -> dict[str, Any]:
    seed, size, total = params["seed"], params["size"], params["images"]
    splits: dict[str, dict[str, int]] = {}
    class_boxes = dict.fromkeys((spot.name for spot in CLASSES), 0)
    for split, indices in (("train", range(n_train)), ("test", range(n_train, total))):
        folder = root / config.SPLIT_DIRS[split]
        folder.mkdir(parents=True)
        rows: list[tuple[object, ...]] = []
        for index in indices:
            name = f"leaf_{index:04d}"
            image, objects = render_image(seed=seed, index=index, size=size)
            (folder / f"{name}.jpg").write_bytes(_jpeg(image))
            (folder / f"{name}.xml").write_text(_voc_xml(folder.name, f"{name}.jpg", image.size, objects), "utf-8")
            for obj in objects:
                rows.append((f"{name}.jpg", *image.size, obj.spot.name, *obj.box))
                class_boxes[obj.spot.name] += 1
        with (root / config.LABEL_CSVS[split]).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(config.CSV_COLUMNS)
            writer.writerows(rows)
        splits[split] = {"images": len(indices), "boxes": len(rows)}
    manifest = {
        "format-version": MANIFEST_FORMAT_VERSION,
        "parameters": params,
        "classes": [spot.name for spot in CLASSES],
        "splits": splits,
        "class-boxes": class_boxes,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    return buffer.getvalue()


def _voc_xml(folder: str, filename: str, size: tuple[int, int], objects: list[_Object]) -> str:
    lines = [
        "<annotation>",
        f"\t<folder>{escape(folder)}</folder>",
        f"\t<filename>{escape(filename)}</filename>",
        "\t<source>",
        "\t\t<database>envtiers synthetic sample</database>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{size[0]}</width>",
        f"\t\t<height>{size[1]}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for obj in objects:
        x0, y0, x1, y1 = obj.box
        lines += [
            "\t<object>",
            f"\t\t<name>{escape(obj.spot.name)}</name>",
            "\t\t<pose>Unspecified</pose>",
            "\t\t<truncated>0</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{x0}</xmin>",
            f"\t\t\t<ymin>{y0}</ymin>",
            f"\t\t\t<xmax>{x1}</xmax>",
            f"\t\t\t<ymax>{y1}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    return "\n".join([*lines, "</annotation>"]) + "\n"


def _noise(seed: int, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform bytes of ``shape`` from PCG64's raw stream, which NumPy guarantees stable."""
    digest = hashlib.sha256(f"sample-noise/{seed}/{index}/{shape}".encode()).digest()
    count = -(-int(np.prod(shape)) // 8)
    raw = np.random.PCG64(int.from_bytes(digest[:8], "little")).random_raw(count)
    return raw.astype("<u8").view(np.uint8)[: int(np.prod(shape))].reshape(shape)


def _background(rng: random.Random, seed: int, index: int, width: int, height: int) -> Image.Image:
    base = np.array([70 + rng.randint(-12, 12), 125 + rng.randint(-15, 15), 50 + rng.randint(-12, 12)], np.float32)
    # Low-frequency blotches (a coarse grid, smoothly upsampled) plus fine grain.
    grid = (height // 32 + 2, width // 32 + 2, 3)
    coarse = Image.fromarray(_noise(seed, index, grid)).resize((width, height), Image.Resampling.BILINEAR)
    blotches = (np.asarray(coarse, np.float32) - 127.5) / 127.5 * 28
    grain = (_noise(seed, index + 1_000_000, (height, width, 1)).astype(np.float32) - 127.5) / 127.5 * 10
    pixels = np.clip(base + blotches + grain, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 5)):  # veins
        x, y = rng.randrange(width), rng.randrange(height)
        vein = tuple(int(c) + 25 for c in base)
        draw.line([(x, y), (rng.randrange(width), rng.randrange(height))], fill=vein, width=rng.randint(1, 3))
    return image


def _place(
    rng: random.Random, width: int, height: int, taken: list[tuple[int, int, int, int]]
) -> tuple[int, int, int, int] | None:
    short = min(width, height)
    for _ in range(50):
        side = rng.uniform(*OBJECT_SIDE) * short
        ratio = rng.uniform(0.85, 1.18)
        w, h = round(side * ratio**0.5), round(side / ratio**0.5)
        x0, y0 = rng.randint(2, width - w - 2), rng.randint(2, height - h - 2)
        box = (x0, y0, x0 + w, y0 + h)
        if all(box[2] + 3 <= t[0] or t[2] + 3 <= box[0] or box[3] + 3 <= t[1] or t[3] + 3 <= box[1] for t in taken):
            return box
    return None


def _draw(draw: ImageDraw.ImageDraw, rng: random.Random, obj: _Object) -> None:
    colour = tuple(min(255, max(0, c + rng.randint(-18, 18))) for c in obj.spot.colour)
    outline = tuple(c * 45 // 100 for c in colour)
    x0, y0, x1, y1 = obj.box
    corners = [x0, y0, x1 - 1, y1 - 1]  # Pillow's shapes include their last pixel
    if obj.spot.shape == "circle":
        draw.ellipse(corners, fill=colour, outline=outline, width=2)
    elif obj.spot.shape == "square":
        draw.rectangle(corners, fill=colour, outline=outline, width=2)
    else:
        apex = (x0 + (x1 - 1 - x0) / 2, y0)
        draw.polygon([apex, (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=colour, outline=outline, width=2)


def render_image(*, seed: int, index: int, size: int) -> tuple[Image.Image, list[_Object]]:
    """Image ``index`` of the sample for ``seed``: an RGB image and its objects.

    An image depends only on (seed, index, size), not on how many images are made.
    """
    rng = random.Random(f"sample/{seed}/{index}")  # str seeds are hashed with SHA-512: stable everywhere
    aspect = rng.choice(("square", "landscape", "portrait"))
    short = size * 3 // 4 if aspect != "square" else size
    width, height = (size, short) if aspect != "portrait" else (short, size)
    image = _background(rng, seed, index, width, height)
    objects: list[_Object] = []
    for number in range(rng.randint(*OBJECTS_PER_IMAGE)):
        # The first object cycles through the classes, so each split of >= 3 images has all of them.
        spot = CLASSES[index % len(CLASSES)] if number == 0 else rng.choice(CLASSES)
        box = _place(rng, width, height, [o.box for o in objects])
        if box is not None:
            objects.append(_Object(spot, box))
    draw = ImageDraw.Draw(image)
    for obj in objects:
        _draw(draw, rng, obj)
    return image.filter(ImageFilter.GaussianBlur(0.6)), objects
