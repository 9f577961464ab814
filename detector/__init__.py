"""The PlantDoc RetinaNet detector: data, augment, model, train, evaluate, export, serve, deploy.

One module per pipeline stage; the Metaflow steps in flows/ call these functions and stay short.
"""

import logging


class _MissingPromiseFilter(logging.Filter):
    """Drop tensorflow-datasets' "No module named 'promise'" traceback.

    keras-cv imports tensorflow-datasets, whose __init__ logs (and survives) a failed import of
    `promise`: envs/overrides.txt leaves that sdist-only package out on purpose, since only tfds'
    download code uses it. Any other absl message passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "No module named 'promise'" not in record.getMessage()


logging.getLogger("absl").addFilter(_MissingPromiseFilter())
