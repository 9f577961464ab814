"""Two steps that note, as their first line, when their body started (bench/remote.py times each
task's bootstrap up to there), then which purepkg the lock's env gave them."""

import time

from metaflow import FlowSpec, step


class BootstrapFlow(FlowSpec):
    @step
    def start(self):
        self.started_at = time.time()
        import purepkg

        self.purepkg_version = purepkg.__version__
        self.next(self.end)

    @step
    def end(self):
        self.started_at = time.time()
        import purepkg

        self.purepkg_version = purepkg.__version__


if __name__ == "__main__":
    BootstrapFlow()
