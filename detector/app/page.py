"""The Streamlit page: ``python -m detector app`` serves it (``streamlit run`` of this file).

Widgets only; what they show comes from ``runs``, ``sources`` and ``view``. Streamlit reruns
this script on every interaction, so everything slow is cached: models with
``st.cache_resource`` (loaded once per process, shared by every browser session), detections
with ``st.cache_data`` keyed by the model and the image's SHA-256. The threshold slider and the
class filter only filter cached detections: moving them never calls the model.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

import streamlit as st

from detector import config
from detector.app import runs, sources, view
from detector.errors import DetectorError, NoRunError

MODES = ("Latest run", "Run by id", "Endpoint URL", "Export folder")


VIEWS = ("Detect", "Compare runs")


def page_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="detector app", add_help=False)
    parser.add_argument("--run")
    parser.add_argument("--endpoint")
    parser.add_argument("--model-dir")
    return parser.parse_known_args(sys.argv[1:])[0]


def show_error(error: DetectorError) -> None:
    st.error(f"{error.headline}" + (f"\n\nFix: {error.fix}" if error.fix else ""))


@st.cache_resource(show_spinner="Loading the model ...")
def load_model(export_dir: str, label: str) -> sources.LocalModel:
    return sources.LocalModel.load(Path(export_dir), label=label)


@st.cache_resource
def counters() -> dict[str, int]:
    """How many times the model ran in this process (shown on the page: the cache at work)."""
    return {"model_calls": 0}


@st.cache_data(ttl=10, show_spinner=False)
def cached_runs() -> list[runs.RunSummary]:
    return runs.list_runs()


@st.cache_data(max_entries=512, show_spinner="Detecting ...")
def detect(source_key: str, digest: str, _source: Any, _image: Any, _data: bytes) -> sources.Prediction:
    counters()["model_calls"] += 1
    result: sources.Prediction = _source.predict(_image, _data)
    return result


@st.cache_resource(show_spinner="Preparing the run's model ...")
def run_export(run_id: str) -> str:
    return str(runs.export_dir_for(runs.get_run(run_id)))


def run_model(summary: runs.RunSummary) -> sources.LocalModel:
    return load_model(run_export(summary.run_id), f"run {summary.run_id}")


def show_run(summary: runs.RunSummary, where: Any) -> None:
    where.markdown("\n".join(f"- **{key}**: `{value}`" for key, value in summary.details()))


def choose_run(listing: list[runs.RunSummary], label: str, *, index: int, key: str) -> runs.RunSummary | None:
    if not listing:
        return None
    by_id = {summary.run_id: summary for summary in listing}
    chosen = st.sidebar.selectbox(
        label, list(by_id), index=min(index, len(by_id) - 1), format_func=lambda i: by_id[i].label(), key=key
    )
    return by_id[chosen]


def choose_source(options: argparse.Namespace) -> Any:
    """The sidebar's model choice, loaded; None (after a message) when there is none to use."""
    start = 2 if options.endpoint else 3 if options.model_dir else 1 if options.run else 0
    mode = st.sidebar.radio("Model", MODES, index=start, key="mode")
    try:
        if mode == "Endpoint URL":
            url = st.sidebar.text_input("Endpoint URL", value=options.endpoint or "http://127.0.0.1:8080", key="url")
            return sources.Endpoint(url)
        if mode == "Export folder":
            folder = st.sidebar.text_input(
                "Export folder", value=options.model_dir or str(config.SAGEMAKER_MODEL_DIR), key="folder"
            )
            return load_model(str(Path(folder).resolve()), f"export {folder}")
        listing = cached_runs()
        if mode == "Run by id":
            ids = [summary.run_id for summary in listing]
            if options.run and options.run not in ids:
                listing = [runs.get_run(options.run), *listing]
                ids.insert(0, options.run)
            summary = choose_run(listing, "Run", index=ids.index(options.run) if options.run else 0, key="run")
        else:
            summary = listing[0] if listing else None
        if summary is None:
            raise NoRunError(config.FLOW_NAME)
        show_run(summary, st.sidebar)
        return run_model(summary)
    except DetectorError as error:
        show_error(error)
        return None


def uploads() -> list[tuple[str, bytes]]:
    files = st.file_uploader("Leaf photos (JPEG or PNG, up to 6 MiB each)", accept_multiple_files=True, key="uploads")
    chosen = [(file.name, file.getvalue()) for file in files or []]
    # ?sample=0 in the URL starts without the sample (bench/app.py times a lone upload that way).
    default = not chosen and st.query_params.get("sample") != "0"
    if st.checkbox("Add the bundled sample photo", value=default, key="sample"):
        chosen.insert(0, sources.sample_upload())
    return chosen


def predict_all(source: Any, images: list[tuple[str, bytes]]) -> list[tuple[str, Any, sources.Prediction]]:
    """Decoded images with their detections; a file that is not an image gets a message instead."""
    done = []
    for name, data in images:
        try:
            image = sources.read_upload(name, data)
            digest = hashlib.sha256(data).hexdigest()
            done.append((name, image, detect(source.key, digest, source, image, data)))
        except DetectorError as error:
            show_error(error)
    return done


def filters(class_names: list[str], model_threshold: float | None) -> tuple[float, list[str]]:
    st.sidebar.divider()
    help_text = "Shown: detections scoring at least this. The model itself"
    help_text += f" drops those under {model_threshold:.2f}." if model_threshold is not None else " may drop low ones."
    threshold = st.sidebar.slider("Confidence threshold", 0.0, 1.0, view.DEFAULT_THRESHOLD, 0.05, help=help_text)
    classes = st.sidebar.multiselect("Classes", class_names, default=class_names)
    return threshold, classes


def render(name: str, image: Any, found: list[Any], total: int, seconds: float, where: Any, *, wide: bool) -> None:
    picture, details = where.columns([3, 2]) if wide else (where, where)
    picture.image(view.draw_boxes(image, found), caption=name, output_format="PNG")
    details.markdown(f"**{name}**: {len(found)} detections shown (of {total} from the model, {seconds * 1e3:.0f} ms)")
    if found:
        details.table(view.table_rows(found))


def detect_view(source: Any) -> None:
    done = predict_all(source, uploads())
    names = list(source.class_names) or sorted({d["class_name"] for _, _, p in done for d in p.detections})
    threshold, classes = filters(names, source.model_threshold)
    shown = []
    for name, image, prediction in done:
        found = view.visible(prediction.detections, threshold=threshold, classes=classes)
        render(name, image, found, len(prediction.detections), prediction.seconds, st, wide=True)
        shown.append((name, found))
    if shown:
        payload = view.detections_json(shown, model=source.label, threshold=threshold, classes=classes)
        st.download_button("Download detections (JSON)", payload, file_name="detections.json", mime="application/json")


def compare_view() -> None:
    try:
        listing = cached_runs()
        if not listing:
            raise NoRunError(config.FLOW_NAME)
    except DetectorError as error:
        show_error(error)
        return
    st.sidebar.divider()
    left = choose_run(listing, "Run A", index=0, key="run_a")
    right = choose_run(listing, "Run B", index=1, key="run_b")
    images = uploads()[:1]
    pairs = []
    for summary, column in zip((left, right), st.columns(2), strict=True):
        assert summary is not None
        column.subheader(f"Run {summary.run_id}")
        show_run(summary, column)
        try:
            model = run_model(summary)
        except DetectorError as error:
            show_error(error)
            continue
        pairs.append((summary, model, column))
    names = sorted({name for _, model, _ in pairs for name in model.class_names})
    threshold, classes = filters(names, None)
    for _, model, column in pairs:
        for name, image, prediction in predict_all(model, images):
            found = view.visible(prediction.detections, threshold=threshold, classes=classes)
            render(name, image, found, len(prediction.detections), prediction.seconds, column, wide=False)
    st.subheader("AP per class (evaluation artifacts)")
    assert left is not None and right is not None
    st.table(runs.compare_ap(left, right))


def main() -> None:
    sources.keep_tensorflow_warm()
    st.set_page_config(page_title="PlantDoc detector", layout="wide")
    st.title("PlantDoc detector")
    options = page_options()
    chosen_view = st.radio("View", VIEWS, horizontal=True, label_visibility="collapsed", key="view")
    if chosen_view == VIEWS[1]:
        compare_view()
    else:
        source = choose_source(options)
        if source is not None:
            st.caption(f"Model: {source.label}")
            detect_view(source)
    st.sidebar.caption(f"Model calls so far: {counters()['model_calls']}")


main()
