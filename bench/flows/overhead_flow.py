"""Five trivial steps: what Metaflow itself costs per step (bench/flow.py times it per tier)."""

from metaflow import FlowSpec, step


class OverheadFlow(FlowSpec):
    @step
    def start(self):
        self.count = 0
        self.next(self.one)

    @step
    def one(self):
        self.count += 1
        self.next(self.two)

    @step
    def two(self):
        self.count += 1
        self.next(self.three)

    @step
    def three(self):
        self.count += 1
        self.next(self.end)

    @step
    def end(self):
        assert self.count == 3


if __name__ == "__main__":
    OverheadFlow()
