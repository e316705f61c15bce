"""The rules: one module per rule, each reading like its own documentation.

Every module defines one :class:`patcher.rule.Rule` subclass with a stable code, a name, a
rationale (the module docstring) and before/after examples that the test suite runs.
"""

from patches.ddp001_local_rank_from_env import LocalRankFromEnv
from patches.ddp002_local_rank_hyphen_alias import LocalRankHyphenAlias
from patches.ddp003_rank_zero_evaluate_and_save import RankZeroEvaluateAndSave
from patches.ddp004_evaluate_unwrapped_model import EvaluateUnwrappedModel
from patches.ddp005_complete_rank_zero_evaluation import CompleteRankZeroEvaluation
from patches.ddp006_eval_results_always_bound import EvalResultsAlwaysBound

RULES = (
    LocalRankFromEnv,
    LocalRankHyphenAlias,
    RankZeroEvaluateAndSave,
    EvaluateUnwrappedModel,
    CompleteRankZeroEvaluation,
    EvalResultsAlwaysBound,
)

__all__ = ["RULES"]
