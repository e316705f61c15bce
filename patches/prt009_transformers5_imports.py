"""PRT009 transformers5-imports: names these scripts import that transformers 4 moved or 5 removed.

Scripts written against transformers 2.x/3.x import from flat modules such as
``transformers.modeling_bert`` or ``transformers.tokenization_roberta_fast``; transformers 4 moved
every model into ``transformers.models.<family>`` and the old paths raise ModuleNotFoundError.
For the families these scripts use (BERT, RoBERTa, GPT-2, OpenAI GPT, DistilBERT, T5, BART,
XLM-RoBERTa, Longformer, auto) the rule rewrites the module path when every imported name is a pure
relocation: the same object, importable at the new path in both transformers 4.40 and 5, so the
patched script runs on either. Fast-tokenizer modules (gone in 5) and Longformer's tokenizer
module become ``from transformers import ...``, valid in every release. ``BertLayerNorm`` was
``torch.nn.LayerNorm`` in every release that had it (2.0 to 3.x), so it becomes
``from torch.nn import LayerNorm as BertLayerNorm``. Formatting and aliases are kept.
``find_pruneable_heads_and_indices`` (removed in 5, nothing replaces it; model files import it for
their ``prune_heads``) leaves its import and is defined in the script after the last top-level
import, with transformers 4's behaviour (``patches/_prune_heads.py``); an import that is not a
module-level line of its own, or a name the module binds otherwise, is reported instead.
``Conv1D``, ``apply_chunking_to_forward`` and ``prune_linear_layer`` imported from
``transformers.modeling_utils`` (which re-exported them in 4, not in 5) move to a
``from transformers.pytorch_utils import ...`` line of their own (the same objects in 4.40 and 5).

Reported without a fix, because the replacement changes behaviour or signature:
``WarmupLinearSchedule`` and its siblings (the ``get_*_schedule*`` functions take
``num_warmup_steps``/``num_training_steps``, not ``warmup_steps``/``t_total``), ``cached_path``
(``huggingface_hub.hf_hub_download`` downloads by repo and file name), ``AutoModelWithLMHead``
(pick ``AutoModelForCausalLM``, ``AutoModelForMaskedLM`` or ``AutoModelForSeq2SeqLM``),
``prune_conv1d_layer``, ``prune_layer`` and ``SequenceSummary`` (removed in 5), and any name of a
flat module that is not at its new path in both 4.40 and 5 (a flat-module import holding one is
left whole and reported). ``import transformers.modeling_x`` is reported too: its uses would need
rewriting. Also reported: transformers' GLUE/SQuAD/XNLI data processors, metrics and datasets
(``glue_convert_examples_to_features``, ``xnli_processors``, ``squad_convert_examples_to_features``,
``SquadResult``, ``TextDataset``, ..., and the ``transformers.data.processors``/``.metrics``/
``.datasets`` modules), gone in 5 with nothing in their place; ``MODEL_WITH_LM_HEAD_MAPPING``; and a
flat model module of a family the table does not cover (``transformers.modeling_xlm``), which is
gone since 4 but whose names ddpfix has not checked at a new path. ``AdamW`` belongs to PRT001.
A project that ships its own transformers (``patches/_bundled.py``) is left alone.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Replacement
from patches._bundled import bundled
from patches._prune_heads import define_helper
from patches._syntax import dotted_name


def _family(
    family: str, modeling: str, configuration: str, tokenization: str, fast: str | None = None
) -> dict[str, tuple[str, frozenset[str]]]:
    """The flat modules of one model family → (module to import from now, names found there).

    Every name was checked importable at the new path in transformers 4.40.2 and 5.24.0."""
    new = f"transformers.models.{family}"
    moved = {
        f"transformers.modeling_{family}": (
            f"{new}.modeling_{family}",
            frozenset(modeling.split()),
        ),
        f"transformers.configuration_{family}": (
            f"{new}.configuration_{family}",
            frozenset(configuration.split()),
        ),
        f"transformers.tokenization_{family}": (
            f"{new}.tokenization_{family}",
            frozenset(tokenization.split()),
        ),
    }
    if fast:  # gone in transformers 5; the top-level name works in every release
        moved[f"transformers.tokenization_{family}_fast"] = ("transformers", frozenset([fast]))
    return moved


RELOCATED: dict[str, tuple[str, frozenset[str]]] = {
    **_family(
        "bert",
        "BertAttention BertEmbeddings BertEncoder BertForMaskedLM BertForMultipleChoice"
        " BertForNextSentencePrediction BertForPreTraining BertForPreTrainingOutput"
        " BertForQuestionAnswering BertForSequenceClassification BertForTokenClassification"
        " BertIntermediate BertLMHeadModel BertLMPredictionHead BertLayer BertModel"
        " BertOnlyMLMHead BertOnlyNSPHead BertOutput BertPooler BertPreTrainedModel"
        " BertPreTrainingHeads BertPredictionHeadTransform BertSelfAttention BertSelfOutput",
        "BertConfig",
        "BertTokenizer VOCAB_FILES_NAMES load_vocab",
        "BertTokenizerFast",
    ),
    **_family(
        "roberta",
        "RobertaAttention RobertaClassificationHead RobertaEmbeddings RobertaEncoder"
        " RobertaForCausalLM RobertaForMaskedLM RobertaForMultipleChoice"
        " RobertaForQuestionAnswering RobertaForSequenceClassification"
        " RobertaForTokenClassification RobertaIntermediate RobertaLMHead RobertaLayer"
        " RobertaModel RobertaOutput RobertaPooler RobertaPreTrainedModel RobertaSelfAttention"
        " RobertaSelfOutput",
        "RobertaConfig",
        "RobertaTokenizer VOCAB_FILES_NAMES",
        "RobertaTokenizerFast",
    ),
    **_family(
        "gpt2",
        "GPT2DoubleHeadsModel GPT2DoubleHeadsModelOutput GPT2ForSequenceClassification"
        " GPT2LMHeadModel GPT2Model GPT2PreTrainedModel",
        "GPT2Config",
        "GPT2Tokenizer VOCAB_FILES_NAMES",
        "GPT2TokenizerFast",
    ),
    **_family(
        "openai",
        "OpenAIGPTDoubleHeadsModel OpenAIGPTDoubleHeadsModelOutput"
        " OpenAIGPTForSequenceClassification OpenAIGPTLMHeadModel OpenAIGPTModel"
        " OpenAIGPTPreTrainedModel",
        "OpenAIGPTConfig",
        "OpenAIGPTTokenizer VOCAB_FILES_NAMES",
        "OpenAIGPTTokenizerFast",
    ),
    **_family(
        "distilbert",
        "DistilBertForMaskedLM DistilBertForMultipleChoice DistilBertForQuestionAnswering"
        " DistilBertForSequenceClassification DistilBertForTokenClassification DistilBertModel"
        " DistilBertPreTrainedModel Embeddings FFN Transformer TransformerBlock"
        " create_sinusoidal_embeddings",
        "DistilBertConfig",
        "DistilBertTokenizer VOCAB_FILES_NAMES",
        "DistilBertTokenizerFast",
    ),
    **_family(
        "t5",
        "T5Attention T5Block T5ForConditionalGeneration T5LayerCrossAttention T5LayerFF"
        " T5LayerNorm T5LayerSelfAttention T5Model T5PreTrainedModel T5Stack",
        "T5Config",
        "T5Tokenizer VOCAB_FILES_NAMES",
        "T5TokenizerFast",
    ),
    **_family(
        "bart",
        "BartClassificationHead BartDecoder BartEncoder BartForConditionalGeneration"
        " BartForQuestionAnswering BartForSequenceClassification BartModel PretrainedBartModel"
        " shift_tokens_right",
        "BartConfig",
        "BartTokenizer",
        "BartTokenizerFast",
    ),
    **_family(
        "xlm_roberta",
        "XLMRobertaForCausalLM XLMRobertaForMaskedLM XLMRobertaForMultipleChoice"
        " XLMRobertaForQuestionAnswering XLMRobertaForSequenceClassification"
        " XLMRobertaForTokenClassification XLMRobertaModel",
        "XLMRobertaConfig",
        "XLMRobertaTokenizer VOCAB_FILES_NAMES",
        "XLMRobertaTokenizerFast",
    ),
    **_family(
        "longformer",
        "LongformerAttention LongformerBaseModelOutput LongformerBaseModelOutputWithPooling"
        " LongformerClassificationHead LongformerEmbeddings LongformerEncoder"
        " LongformerForMaskedLM LongformerForMultipleChoice LongformerForQuestionAnswering"
        " LongformerForSequenceClassification LongformerForTokenClassification"
        " LongformerIntermediate LongformerLMHead LongformerLayer LongformerModel"
        " LongformerMultipleChoiceModelOutput LongformerOutput LongformerPooler"
        " LongformerPreTrainedModel LongformerQuestionAnsweringModelOutput"
        " LongformerSelfAttention LongformerSelfOutput create_position_ids_from_input_ids",
        "LongformerConfig",
        "",
        "LongformerTokenizerFast",
    ),
    **_family(
        "auto",
        "AutoModel AutoModelForCausalLM AutoModelForMaskedLM AutoModelForMultipleChoice"
        " AutoModelForNextSentencePrediction AutoModelForPreTraining"
        " AutoModelForQuestionAnswering AutoModelForSeq2SeqLM"
        " AutoModelForSequenceClassification AutoModelForTokenClassification MODEL_MAPPING"
        " MODEL_FOR_CAUSAL_LM_MAPPING MODEL_FOR_MASKED_LM_MAPPING"
        " MODEL_FOR_MULTIPLE_CHOICE_MAPPING MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING"
        " MODEL_FOR_PRETRAINING_MAPPING MODEL_FOR_QUESTION_ANSWERING_MAPPING"
        " MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING"
        " MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING",
        "AutoConfig CONFIG_MAPPING",
        "AutoTokenizer TOKENIZER_MAPPING",
    ),
}
# transformers 4 has no models/longformer/tokenization_longformer (5 neither): top level it is.
RELOCATED["transformers.tokenization_longformer"] = (
    "transformers",
    frozenset(["LongformerTokenizer"]),
)

#: Removed in transformers 5 (nothing replaces it); imported from these modules in 3.x and 4.x.
PRUNE = "find_pruneable_heads_and_indices"
PRUNE_MODULES = ("transformers.pytorch_utils", "transformers.modeling_utils")
#: ``transformers.modeling_utils`` re-exported these from ``transformers.pytorch_utils`` in 4;
#: 5 does not. The same objects are in ``pytorch_utils`` in 4.40 and 5.
TO_PYTORCH_UTILS = frozenset({"Conv1D", "apply_chunking_to_forward", "prune_linear_layer"})
_MODELING_UTILS = "transformers.modeling_utils"
_PYTORCH_UTILS = "transformers.pytorch_utils"

_SCHEDULE = (
    "{name} is gone since transformers 3: use {new}(optimizer, num_warmup_steps=...{more}), "
    "whose arguments differ"
)
_TRAINING = ", num_training_steps=..."
_OPTIMIZATION = ("transformers", "transformers.optimization")
#: transformers' data processors, metrics and datasets (``transformers.data.processors``,
#: ``.metrics``, ``.datasets``), gone in 5 (checked: not in 5.24.0); HF's 2019-2021 example
#: copies import them from the package or from those modules.
_DATA_MODULES = (
    "transformers.data.processors",
    "transformers.data.metrics",
    "transformers.data.datasets",
)
_DATA = (
    "transformers",
    "transformers.data",
    *(f"{m}{tail}" for m in _DATA_MODULES for tail in ("", ".glue", ".squad", ".xnli", ".utils")),
    "transformers.data.metrics.squad_metrics",
    "transformers.data.datasets.language_modeling",
)
_DATA_NAMES = [
    "DataProcessor",
    "InputExample",
    "InputFeatures",
    "SingleSentenceClassificationProcessor",
    "glue_convert_examples_to_features",
    "glue_processors",
    "glue_output_modes",
    "glue_tasks_num_labels",
    "glue_compute_metrics",
    "xnli_processors",
    "xnli_output_modes",
    "xnli_tasks_num_labels",
    "xnli_compute_metrics",
    "squad_convert_examples_to_features",
    "SquadExample",
    "SquadFeatures",
    "SquadV1Processor",
    "SquadV2Processor",
    "SquadResult",
    "TextDataset",
    "LineByLineTextDataset",
    "LineByLineWithRefDataset",
    "TextDatasetForNextSentencePrediction",
    "GlueDataset",
    "GlueDataTrainingArguments",
    "SquadDataset",
    "SquadDataTrainingArguments",
]
#: The flat modules transformers 5 still has (5.24.0's ``modeling_*``, ``configuration_*`` and
#: ``tokenization_*`` modules, checked with ``importlib.util.find_spec``); any other such module
#: of an old script is gone.
_FLAT_IN_5 = frozenset(
    [
        "configuration_utils",
        "modeling_flash_attention_utils",
        "modeling_gguf_pytorch_utils",
        "modeling_layers",
        "modeling_outputs",
        "modeling_rope_utils",
        "modeling_utils",
        "tokenization_mistral_common",
        "tokenization_python",
        "tokenization_utils_base",
        "tokenization_utils_sentencepiece",
        "tokenization_utils_tokenizers",
        # aliases without a file of their own (importlib finds them)
        "tokenization_utils",
        "tokenization_utils_fast",
    ]
)
_FLAT_PREFIXES = ("modeling_", "configuration_", "tokenization_")
#: name → (modules it was imported from, what replaces it and why it is not a drop-in).
REMOVED: dict[str, tuple[tuple[str, ...], str]] = {
    "WarmupLinearSchedule": (
        _OPTIMIZATION,
        _SCHEDULE.format(
            name="WarmupLinearSchedule", new="get_linear_schedule_with_warmup", more=_TRAINING
        ),
    ),
    "WarmupCosineSchedule": (
        _OPTIMIZATION,
        _SCHEDULE.format(
            name="WarmupCosineSchedule", new="get_cosine_schedule_with_warmup", more=_TRAINING
        ),
    ),
    "WarmupCosineWithHardRestartsSchedule": (
        _OPTIMIZATION,
        _SCHEDULE.format(
            name="WarmupCosineWithHardRestartsSchedule",
            new="get_cosine_with_hard_restarts_schedule_with_warmup",
            more=_TRAINING,
        ),
    ),
    "WarmupConstantSchedule": (
        _OPTIMIZATION,
        _SCHEDULE.format(
            name="WarmupConstantSchedule", new="get_constant_schedule_with_warmup", more=""
        ),
    ),
    "ConstantLRSchedule": (
        _OPTIMIZATION,
        "ConstantLRSchedule is gone since transformers 3: use get_constant_schedule(optimizer)",
    ),
    "cached_path": (
        ("transformers", "transformers.file_utils", "transformers.utils"),
        "cached_path is gone (in transformers 3, not 4.40 or 5): download with "
        "huggingface_hub.hf_hub_download(repo_id, filename); plain URLs need another downloader",
    ),
    "AutoModelWithLMHead": (
        (
            "transformers",
            "transformers.modeling_auto",
            "transformers.models.auto.modeling_auto",
        ),
        "AutoModelWithLMHead was removed in transformers 5: use AutoModelForCausalLM, "
        "AutoModelForMaskedLM or AutoModelForSeq2SeqLM, whichever head the model needs",
    ),
    **{
        name: (
            PRUNE_MODULES,
            f"{name} was removed in transformers 5 and has no replacement there: write it in "
            "the script",
        )
        for name in ("prune_conv1d_layer", "prune_layer")
    },
    "SequenceSummary": (
        (_MODELING_UTILS,),
        "SequenceSummary (a head of transformers.modeling_utils) was removed in transformers 5: "
        "write the summary head in the script",
    ),
    **{
        name: (
            _DATA,
            f"{name} was removed in transformers 5 with transformers' GLUE/SQuAD/XNLI data "
            "processors, metrics and datasets: pin transformers<5 for this script, or copy the "
            "code it uses into the project",
        )
        for name in _DATA_NAMES
    },
    "MODEL_WITH_LM_HEAD_MAPPING": (
        (
            "transformers",
            "transformers.modeling_auto",
            "transformers.models.auto.modeling_auto",
        ),
        "MODEL_WITH_LM_HEAD_MAPPING was removed in transformers 5 with AutoModelWithLMHead: use "
        "MODEL_FOR_CAUSAL_LM_MAPPING or MODEL_FOR_MASKED_LM_MAPPING, whichever head the model "
        "needs",
    ),
    PRUNE: (
        PRUNE_MODULES,
        f"{PRUNE} was removed in transformers 5 and has no replacement there: define the helper "
        "in the script (prune_linear_layer is still in transformers.pytorch_utils)",
    ),
}
#: Names of flat modules whose replacement is not a relocation (else: "not at the new path").
NOT_MOVED: dict[tuple[str, str], str] = {
    (
        "transformers.modeling_roberta",
        "create_position_ids_from_input_ids",
    ): "create_position_ids_from_input_ids is a static method of RobertaEmbeddings in "
    "transformers 5 (a module function in 4)",
    ("transformers.tokenization_bert", "BasicTokenizer"): (
        "BasicTokenizer left transformers 5's BERT tokenizer (tokenizers does the splitting)"
    ),
    ("transformers.tokenization_bert", "WordpieceTokenizer"): (
        "WordpieceTokenizer left transformers 5's BERT tokenizer (tokenizers does the splitting)"
    ),
}
#: Was ``torch.nn.LayerNorm`` itself in every release that had it (checked: 2.0.0, 2.1.1, 3.0.2).
LAYER_NORM = ("transformers.modeling_bert", "BertLayerNorm")


def _module_expr(dotted: str) -> cst.Attribute | cst.Name:
    parts = dotted.split(".")
    node: cst.Attribute | cst.Name = cst.Name(parts[0])
    for part in parts[1:]:
        node = cst.Attribute(node, cst.Name(part))
    return node


def _is_flat(module: str) -> bool:
    """``transformers.modeling_bert``-style: a model module from before transformers 4."""
    return module in RELOCATED


def _layer_norm_import(alias: cst.ImportAlias) -> cst.SimpleStatementLine:
    """``from torch.nn import LayerNorm as <the name the script uses>``."""
    bound = alias.asname.name if alias.asname else cst.Name("BertLayerNorm")
    assert type(bound) is cst.Name
    alias_text = "" if bound.value == "LayerNorm" else f" as {bound.value}"
    statement = cst.parse_statement(f"from torch.nn import LayerNorm{alias_text}\n")
    assert type(statement) is cst.SimpleStatementLine
    return statement


def _removed(module: str, name: str) -> str:
    """Why ``name`` cannot be imported from ``module`` any more; empty when not known here."""
    modules, message = REMOVED.get(name, ((), ""))
    return message if module in modules else ""


def _gone_module(module: str) -> str:
    """Why ``module`` cannot be imported from transformers 5 when ddpfix has no table for it
    (empty when it can, or when it is not a transformers module this rule knows the shape of)."""
    head, _, sub = module.partition(".")
    if head != "transformers" or not sub:
        return ""
    if any(module == m or module.startswith(f"{m}.") for m in _DATA_MODULES):
        return (
            f"{module} is gone in transformers 5 (transformers' GLUE/SQuAD/XNLI data "
            "processors, metrics and datasets were removed): pin transformers<5 for this "
            "script, or copy the code it uses into the project"
        )
    if "." not in sub and sub.startswith(_FLAT_PREFIXES) and sub not in _FLAT_IN_5:
        family = sub.split("_", 1)[1]
        if family.endswith("utils") or family.startswith(("tf_", "flax_")):
            return (
                f"{module} was removed in transformers 5 (TensorFlow, Flax and these helpers "
                "left it); ddpfix has no replacement for it: rewrite what the script takes from "
                "it by hand"
            )
        return (
            f"{module} is gone since transformers 4: its names moved to transformers.models."
            f"<family> (likely transformers.models.{family}.{sub}) or to `transformers` itself; "
            "ddpfix has no checked table for it, so move the import by hand"
        )
    return ""


def _without(names: list[cst.ImportAlias], *drops: cst.ImportAlias) -> list[cst.ImportAlias]:
    """``names`` without ``drops``; the name before each takes its comma, so lines stay lines."""
    kept: list[cst.ImportAlias] = []
    for alias in names:
        if any(alias is drop for drop in drops):
            if kept:
                kept[-1] = kept[-1].with_changes(comma=alias.comma)
            continue
        kept.append(alias)
    return kept


def _moved_message(alias: cst.ImportAlias) -> str:
    return (
        f"{dotted_name(alias.name)} is not in {_MODELING_UTILS} in transformers 5: import it from "
        f"{_PYTORCH_UTILS} (the same object in 4)"
    )


def _import_lines(
    line: cst.SimpleStatementLine,
    node: cst.ImportFrom,
    kept: list[cst.ImportAlias],
    moved: list[cst.ImportAlias],
) -> list[cst.BaseStatement]:
    """What replaces an import line: its ``kept`` names, then ``moved`` from pytorch_utils."""
    lines: list[cst.BaseStatement] = []
    if kept:
        lines.append(line.with_changes(body=[node.with_changes(names=kept)]))
    if moved:
        separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        aliases = [
            a.with_changes(comma=separator if i < len(moved) - 1 else cst.MaybeSentinel.DEFAULT)
            for i, a in enumerate(moved)
        ]
        statement = cst.SimpleStatementLine(
            [cst.ImportFrom(module=_module_expr(_PYTORCH_UTILS), names=aliases)],
            leading_lines=[] if lines else line.leading_lines,
        )
        lines.append(statement)
    return lines


class Transformers5Imports(Rule):
    code = "PRT009"
    name = "transformers5-imports"
    summary = "Move imports from pre-4 transformers module paths; define or report removed names."
    rationale = __doc__
    settles = True
    triggers = (
        "transformers.modeling_",
        "transformers.configuration_",
        "transformers.tokenization_",
        *REMOVED,
    )
    examples = (
        Example(
            before="""
                from transformers.modeling_roberta import (RobertaModel,
                                                           create_position_ids_from_input_ids)
            """,
            reports=1,
            messages=(
                "transformers.modeling_roberta is gone since transformers 4 (now "
                "transformers.models.roberta.modeling_roberta), but "
                "create_position_ids_from_input_ids is not there in both transformers 4.40 and "
                "5: create_position_ids_from_input_ids is a static method of RobertaEmbeddings "
                "in transformers 5 (a module function in 4)",
            ),
        ),
        Example(
            before="""
                from transformers.modeling_roberta import (RobertaModel,
                                                           RobertaClassificationHead)
            """,
            after="""
                from transformers.models.roberta.modeling_roberta import (RobertaModel,
                                                           RobertaClassificationHead)
            """,
            messages=(
                "transformers.modeling_roberta is gone since transformers 4: import from "
                "transformers.models.roberta.modeling_roberta",
            ),
        ),
        Example(
            before="""
                import torch
                from transformers.modeling_bert import BertLayerNorm
            """,
            after="""
                import torch
                from torch.nn import LayerNorm as BertLayerNorm
            """,
            messages=("BertLayerNorm was torch.nn.LayerNorm",),
        ),
        Example(
            before="""
                from transformers import WEIGHTS_NAME, WarmupLinearSchedule
            """,
            reports=1,
            messages=(
                "WarmupLinearSchedule is gone since transformers 3: use "
                "get_linear_schedule_with_warmup(optimizer, num_warmup_steps=..., "
                "num_training_steps=...), whose arguments differ",
            ),
        ),
        Example(
            before="""
                import torch
                from transformers.pytorch_utils import prune_linear_layer
                from transformers.pytorch_utils import find_pruneable_heads_and_indices as find
            """,
            after='''
                import torch
                from transformers.pytorch_utils import prune_linear_layer


                def find(heads, n_heads, head_size, already_pruned_heads):
                    """transformers 4's helper, removed in 5: the heads not pruned yet, and the
                    rows of the current n_heads * head_size that the layer keeps without them."""
                    heads = set(heads) - set(already_pruned_heads)
                    now = set()
                    for head in heads:
                        index = head - sum(1 for p in already_pruned_heads if p < head)
                        if not -n_heads <= index < n_heads:
                            raise IndexError(f"head {head} is out of range for {n_heads} heads")
                        now.add(index % n_heads)
                    keep = [r for r in range(n_heads * head_size) if r // head_size not in now]
                    return heads, torch.tensor(keep, dtype=torch.long)
            ''',
            messages=(
                "find_pruneable_heads_and_indices was removed in transformers 5: defined in the "
                "script with transformers 4's behaviour",
            ),
        ),
        Example(
            before="""
                from transformers.models.bert.modeling_bert import BertModel
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        if bundled(ctx.path, "transformers"):
            return  # the script imports the copy its project ships, not today's transformers
        tree = ctx.tree
        for line in tree.nodes(cst.SimpleStatementLine):
            for node in line.body:
                if type(node) is cst.Import:
                    self._plain_import(ctx, node)
                elif type(node) is cst.ImportFrom and node.module is not None:
                    if node.relative:
                        continue
                    module = dotted_name(node.module) or ""
                    if _is_flat(module):
                        self._flat(ctx, line, node, module)
                    elif _gone_module(module) and not self._names_known(node, module):
                        ctx.report(node, _gone_module(module))
                    else:
                        self._removed_names(ctx, line, node, module)
        for attribute in tree.nodes(cst.Attribute):
            dotted = dotted_name(attribute) or ""
            head, _, name = dotted.rpartition(".")
            if name in REMOVED and head in REMOVED[name][0]:
                ctx.report(attribute, REMOVED[name][1])

    @staticmethod
    def _names_known(node: cst.ImportFrom, module: str) -> bool:
        """Whether every imported name has its own entry (reported one by one instead)."""
        if isinstance(node.names, cst.ImportStar):
            return False
        return all(_removed(module, dotted_name(a.name) or "") for a in node.names)

    def _plain_import(self, ctx: RuleContext, node: cst.Import) -> None:
        for alias in node.names:
            module = dotted_name(alias.name) or ""
            if _is_flat(module):
                new = RELOCATED[module][0]
                ctx.report(alias, f"{module} is gone since transformers 4: its names are in {new}")
            elif _gone_module(module):
                ctx.report(alias, _gone_module(module))

    def _removed_names(
        self, ctx: RuleContext, line: cst.SimpleStatementLine, node: cst.ImportFrom, module: str
    ) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        names = list(node.names)
        moved = [
            alias
            for alias in names
            if module == _MODELING_UTILS and dotted_name(alias.name) in TO_PYTORCH_UTILS
        ]
        if len(line.body) != 1:  # `from ... import x; y = 1`: one statement per line only
            moved = []
        prune = [a for a in names if dotted_name(a.name) == PRUNE and module in PRUNE_MODULES]
        also = [(a, _moved_message(a)) for a in moved]
        defined = bool(prune) and define_helper(
            ctx,
            line,
            prune[0],
            _import_lines(line, node, _without(names, *moved, prune[0]), moved),
            also,
        )
        if moved and not defined:
            replacement = _import_lines(line, node, _without(names, *moved), moved)
            ctx.fix(moved[0], also[0][1], {line: replacement}, also[1:])
        for alias in names:
            name = dotted_name(alias.name)
            if name is None or not _removed(module, name) or (defined and alias is prune[0]):
                continue
            ctx.report(alias, _removed(module, name))

    def _flat(
        self, ctx: RuleContext, line: cst.SimpleStatementLine, node: cst.ImportFrom, module: str
    ) -> None:
        new, moved = RELOCATED[module]
        if isinstance(node.names, cst.ImportStar):
            ctx.report(node, f"{module} is gone since transformers 4: import from {new}")
            return
        layer_norm = [a for a in node.names if (module, dotted_name(a.name)) == LAYER_NORM]
        stuck = [
            dotted_name(a.name) or ""
            for a in node.names
            if a not in layer_norm and dotted_name(a.name) not in moved
        ]
        if stuck:
            why = [NOT_MOVED.get((module, n)) or _removed(module, n) for n in stuck]
            detail = "; ".join(w for w in why if w)
            message = (
                f"{module} is gone since transformers 4 (now {new}), but "
                f"{', '.join(stuck)} is not there in both transformers 4.40 and 5"
            )
            ctx.report(node, f"{message}: {detail}" if detail else message)
            return
        if len(line.body) != 1:  # `from ... import x; y = 1`: one statement per line only
            ctx.report(node, f"{module} is gone since transformers 4: import from {new}")
            return
        names = list(node.names)
        for alias in layer_norm:
            names = _without(names, alias)
        new_lines: list[cst.BaseStatement] = []
        if names:
            moved_node = node.with_changes(module=_module_expr(new), names=names)
            new_lines.append(line.with_changes(body=[moved_node]))
        for alias in layer_norm:
            statement = _layer_norm_import(alias)
            if not new_lines:
                statement = statement.with_changes(leading_lines=line.leading_lines)
            new_lines.append(statement)
        parts = []
        if names:
            parts.append(f"{module} is gone since transformers 4: import from {new}")
        if layer_norm:
            parts.append("BertLayerNorm was torch.nn.LayerNorm")
        replacements: dict[cst.CSTNode, Replacement] = {line: new_lines}
        ctx.fix(line, "; ".join(parts), replacements)
