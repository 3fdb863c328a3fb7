"""What the provenance stage (rule write_provenance) writes: the record of the run."""

from typing import ClassVar

from cnnatlas.plan.stage import Stage

__all__ = ["Provenance"]


class Provenance(Stage):
    """The provenance plan of a run (`plan.provenance`)."""

    PATHS: ClassVar[dict[str, str]] = {"provenance": "provenance.json"}
    RULES: ClassVar[dict[str, str]] = {"write_provenance": ""}

    @property
    def path(self) -> str:
        return self.out("provenance")
