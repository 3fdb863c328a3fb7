"""What the demo stage (rules write_demo_dataset, train_demo_model) writes: the digits
as an image folder, and the checkpoints of the CNN it trains."""

from typing import ClassVar

from cnnatlas.plan.stage import Stage

__all__ = ["Demo"]


class Demo(Stage):
    """The demo's plan of a run (`plan.demo`)."""

    PATHS: ClassVar[dict[str, str]] = {
        "train": "demo/digits/train",
        "test": "demo/digits/test",
        "checkpoint": "demo/checkpoints/step{step}.pt",
    }
    RULES: ClassVar[dict[str, str]] = {"write_demo_dataset": "", "train_demo_model": ""}
    SECTION = "demo"

    def checkpoints(self) -> list[str]:
        """One checkpoint per training step of demo.steps."""
        return [self.out("checkpoint", step=f"{s:04d}") for s in self.config["steps"]]

    def outputs(self) -> list[str]:
        return [self.out("train"), self.out("test"), *self.checkpoints()]
