"""What a study shows in Optuna's own tools (optuna-dashboard, ``optuna.load_study``).

Each stage's study names its metric (``study.set_metric_names``: the dashboard shows
``val_accuracy``, not "Objective 0") and says which stage it is. The coarse-to-fine recipe's
two stages are linked studies in one storage, ``<name>/coarse`` and ``<name>/refine``: each
carries the recipe's name and both study names, and each trial its stage
(``trainwell:stage``), so the stages can be found and read back with plain Optuna.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

#: study user attributes
STAGE = "trainwell:stage"  # "search" | "coarse" | "refine" | "select"
METRIC = "trainwell:metric"  # the metric, as trainwell names it
RECIPE = "trainwell:recipe"  # a recipe stage: the recipe's name (the studies' common prefix)
RECIPE_STAGES = "trainwell:recipe_stages"  # a recipe stage: both studies' names, in order
#: the stages of the coarse-to-fine recipe, in order
RECIPE_STAGE_NAMES = ("coarse", "refine")


def label_study(study: optuna.Study, metric: str, stage: str) -> None:
    """Name the study's metric and stage; link a recipe stage to the recipe's other stage."""
    attrs: dict[str, Any] = {STAGE: stage, METRIC: metric}
    base, sep, last = study.study_name.rpartition("/")
    if stage in RECIPE_STAGE_NAMES and sep and last == stage:
        attrs[RECIPE] = base
        attrs[RECIPE_STAGES] = [f"{base}/{name}" for name in RECIPE_STAGE_NAMES]
    if list(study.metric_names or []) != [metric]:
        import warnings

        import optuna

        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use since
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric])
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


__all__ = ["METRIC", "RECIPE", "RECIPE_STAGES", "RECIPE_STAGE_NAMES", "STAGE", "label_study"]
