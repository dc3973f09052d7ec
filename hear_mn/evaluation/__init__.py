"""HEAR evaluation without TensorFlow or Lightning: from HEAR task folders to scores.

:func:`evaluate` embeds the tasks with a model (any hear-mn configuration, or any module
with the HEAR API) into heareval's embeddings layout and trains and tests heareval's
downstream models on them, with heareval's protocol (grid, early stopping, model selection,
event post-processing, fold rotation, scores); :func:`score_embeddings` does the second half
on embeddings already written (by us or by heareval). The parts, each in its module:

- :mod:`~hear_mn.evaluation.tasks`: the HEAR task format, checked before any compute;
- :mod:`~hear_mn.evaluation.embedders`, :mod:`~hear_mn.evaluation.embedding`,
  :mod:`~hear_mn.evaluation.layout`: the embedding stage and heareval's layout;
- :mod:`~hear_mn.evaluation.grid`, :mod:`~hear_mn.evaluation.trainer`,
  :mod:`~hear_mn.evaluation.downstream`: the hyper-parameter grid, the batched MLPs, the
  protocol per task;
- :mod:`~hear_mn.evaluation.scores`, :mod:`~hear_mn.evaluation.sed`,
  :mod:`~hear_mn.evaluation.events`: the scores and event post-processing;
- :mod:`~hear_mn.evaluation.report`: reports, summary tables and plot.
"""

from __future__ import annotations

from hear_mn.evaluation.api import EvaluationError, evaluate, score_embeddings
from hear_mn.evaluation.tasks import TaskError

__all__ = ["EvaluationError", "TaskError", "evaluate", "score_embeddings"]
