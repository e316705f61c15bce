"""The rules: one module per rule, each reading like its own documentation.

Every module defines one :class:`patcher.rule.Rule` subclass with a stable code, a name, a
rationale (the module docstring) and before/after examples that the test suite runs.
"""

from patches._importers import imported_sync_exits
from patches._ranks import postcondition
from patches.ddp001_local_rank_from_env import LocalRankFromEnv
from patches.ddp002_local_rank_hyphen_alias import LocalRankHyphenAlias
from patches.ddp003_rank_zero_evaluate_and_save import RankZeroEvaluateAndSave
from patches.ddp004_evaluate_unwrapped_model import EvaluateUnwrappedModel
from patches.ddp005_complete_rank_zero_evaluation import CompleteRankZeroEvaluation, shard_writers
from patches.ddp006_eval_results_always_bound import EvalResultsAlwaysBound
from patches.ddp007_sampler_set_epoch import SamplerSetEpoch
from patches.ddp008_global_rank_gates import GlobalRankGates
from patches.ddp009_node_index_offset import NodeIndexOffset
from patches.ddp010_collective_timeout import CollectiveTimeout
from patches.ddp011_rank_zero_eval_blocks import RankZeroEvalBlocks
from patches.ddp012_barrier_before_shared_read import BarrierBeforeSharedRead
from patches.ddp013_rank_divergence import RankDivergence
from patches.ddp014_wrap_sharded_model import WrapShardedModel
from patches.ddp015_rank_zero_object_calls import RankZeroObjectCalls
from patches.ddp016_convert_dataparallel import ConvertDataParallel
from patches.ddp017_distributed_evaluation import DistributedEvaluation
from patches.ddp018_complete_barrier_pair import CompleteBarrierPair
from patches.ddp019_process_group_for_ddp_branch import ProcessGroupForDdpBranch
from patches.ddp020_every_rank_writes import EveryRankWrites
from patches.ddp021_world_size_not_device_count import WorldSizeNotDeviceCount
from patches.ddp022_shard_score_exit import ShardScoreExit
from patches.prt001_torch_adamw import TorchAdamW
from patches.prt002_optional_tensorboard import OptionalTensorboard
from patches.prt003_distributed_setup_on_cpu import DistributedSetupOnCpu
from patches.prt004_ddp_devices_on_gpu_only import DdpDevicesOnGpuOnly
from patches.prt005_n_gpu_division import NGpuDivision
from patches.prt006_apex_ddp_fallback import ApexDdpFallback
from patches.prt007_config_torchscript import ConfigTorchscript
from patches.prt008_cuda_tensor_types import CudaTensorTypes
from patches.prt009_transformers5_imports import Transformers5Imports
from patches.prt010_tree_sitter_grammar_wheels import TreeSitterGrammarWheels
from patches.prt011_torch_load_weights_only import TorchLoadWeightsOnly
from patches.prt012_roberta_3d_attention_mask import Roberta3dAttentionMask
from patches.prt013_gpu_placement_on_cpu import GpuPlacementOnCpu
from patches.prt014_resized_model_config import ResizedModelConfig
from patches.prt015_transformers5_model_code import Transformers5ModelCode
from patches.prt016_transformers5_legacy_cache import Transformers5LegacyCache
from patches.prt017_bce_input_shape import BceInputShape
from patches.trn001_parameters_after_optimizer import ParametersAfterOptimizer
from patches.trn002_clamped_sentinel_index import ClampedSentinelIndex
from patches.trn003_autograd_cut_parameter import AutogradCutParameter

#: What the engine checks every fix against: the rank model's post-conditions, and no file
#: written by every rank from its own shard, no exit apart from a loop whose imported code
#: synchronises.
POSTCONDITIONS = (postcondition, shard_writers, imported_sync_exits)

RULES = (
    LocalRankFromEnv,
    LocalRankHyphenAlias,
    RankZeroEvaluateAndSave,
    EvaluateUnwrappedModel,
    CompleteRankZeroEvaluation,
    EvalResultsAlwaysBound,
    SamplerSetEpoch,
    GlobalRankGates,
    NodeIndexOffset,
    CollectiveTimeout,
    RankZeroEvalBlocks,
    BarrierBeforeSharedRead,
    RankDivergence,
    WrapShardedModel,
    RankZeroObjectCalls,
    ConvertDataParallel,
    DistributedEvaluation,
    CompleteBarrierPair,
    ProcessGroupForDdpBranch,
    EveryRankWrites,
    WorldSizeNotDeviceCount,
    ShardScoreExit,
    TorchAdamW,
    OptionalTensorboard,
    DistributedSetupOnCpu,
    DdpDevicesOnGpuOnly,
    NGpuDivision,
    ApexDdpFallback,
    ConfigTorchscript,
    CudaTensorTypes,
    Transformers5Imports,
    TreeSitterGrammarWheels,
    TorchLoadWeightsOnly,
    Roberta3dAttentionMask,
    GpuPlacementOnCpu,
    ResizedModelConfig,
    Transformers5ModelCode,
    Transformers5LegacyCache,
    BceInputShape,
    ParametersAfterOptimizer,
    ClampedSentinelIndex,
    AutogradCutParameter,
)

__all__ = ["POSTCONDITIONS", "RULES"]
