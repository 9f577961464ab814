"""The detector's front end: a Streamlit page to upload leaf photos, see detections, compare runs.

``make app`` (``python -m detector app``) and ``docker run IMAGE app`` start it. It lives inside
the ``detector`` package because it is part of what the image ships (docker/Dockerfile copies
``detector/``) and because it reuses the package's decoding, export loading and errors as they
are, so the page and the ``/invocations`` server cannot disagree on what an image is.

- ``view``: pure functions over detections (threshold and class filter, boxes drawn, table, JSON).
- ``runs``: DetectorFlow runs read with Metaflow's Client API, and the export each one serves.
- ``sources``: where predictions come from: a model loaded in this process, or an endpoint URL.
- ``launch``: the ``streamlit run`` command line (rendered, then executed).
- ``page``: the Streamlit script itself; it only wires the modules above to widgets.
"""
