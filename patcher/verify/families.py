"""Which tiny model stands in for the one a run names, decided from the run's own arguments.

A script fine-tunes whatever its command line says: ``--model_type=gpt2`` with
``--model_name_or_path=microsoft/CodeGPT-small-java-adaptedGPT2`` is a GPT-2 run of the same
script that CodeBERT runs as RoBERTa. Verify has no model hub, so it builds a tiny local model of
the same *family* (architecture + tokenizer kind) and puts its directory wherever the command
names a model. The family comes from, in order:

1. ``--model_type`` (and its spellings), through :data:`MODEL_TYPES`;
2. model ids and paths in the arguments, through :data:`KNOWN_IDS` (no hub access: a table);
3. the script's own ``MODEL_CLASSES`` table, whose config class names the architecture;
4. the target's default.

T5 comes in three tokenizer kinds: CodeT5's RoBERTa-style BPE (``t5``), the sentencepiece
unigram of T5 itself, CoTexT and CodeTrans (``t5-spm``), and CodeReviewer's CodeT5 BPE with its
span and diff tokens (``t5-reviewer``, from ``microsoft/codereviewer``; its scripts default to
``--model_type codet5``, which the id refines, since the script needs those tokens). A plain
``--model_type t5`` is refined by the tokenizer class the script's ``MODEL_CLASSES`` gives that
type (``T5Tokenizer`` is sentencepiece, ``RobertaTokenizer`` is CodeT5's), then by the model ids,
since the script must be able to load what it is given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: The families verify can build (patcher.verify.models).
FAMILIES = (
    "roberta",
    "gpt2",
    "t5",
    "t5-spm",
    "t5-reviewer",
    "bart",
    "xlm-roberta",
    "longformer",
)

#: ``--model_type`` values seen in the target repositories, to families.
MODEL_TYPES: dict[str, str] = {
    "roberta": "roberta",
    "bert": "roberta",  # the scripts load BERT-type checkpoints through RoBERTa classes too
    "codebert": "roberta",
    "graphcodebert": "roberta",
    "unixcoder": "roberta",
    "gpt2": "gpt2",
    "codegpt": "gpt2",
    "openai-gpt": "gpt2",
    "t5": "t5",
    "codet5": "t5",
    "cotext": "t5-spm",
    "codetrans": "t5-spm",
    "bart": "bart",
    "plbart": "bart",
    "xlm-roberta": "xlm-roberta",
    "xlmr": "xlm-roberta",
    "longformer": "longformer",
    "longcoder": "longformer",
}

#: Known model ids (or prefixes of them) to families; matched case-insensitively on the id or
#: on a path's last components, so a local copy named like the hub id is recognised as well.
KNOWN_IDS: tuple[tuple[str, str], ...] = (
    ("microsoft/codebert-base", "roberta"),
    ("microsoft/graphcodebert-base", "roberta"),
    ("microsoft/unixcoder-base", "roberta"),
    ("microsoft/codereviewer", "t5-reviewer"),
    ("microsoft/codegpt-small-", "gpt2"),
    ("microsoft/codegpt-", "gpt2"),
    ("microsoft/codeexecutor", "roberta"),
    ("microsoft/longcoder-base", "longformer"),  # a LongformerConfig with per-layer windows
    ("roberta-", "roberta"),
    ("distilroberta-", "roberta"),
    ("huggingface/codeberta-", "roberta"),
    ("gpt2", "gpt2"),
    ("distilgpt2", "gpt2"),
    ("salesforce/codet5", "t5"),
    ("salesforce/codet5p-220m", "t5"),
    ("razent/cotext-", "t5-spm"),
    ("sebis/code_trans_t5_", "t5-spm"),
    ("t5-", "t5-spm"),
    ("google/t5-", "t5-spm"),
    ("facebook/bart-", "bart"),
    ("uclanlp/plbart-", "bart"),
    ("allenai/longformer-", "longformer"),
    ("xlm-roberta-", "xlm-roberta"),
    ("facebookai/xlm-roberta-", "xlm-roberta"),
)

#: Flags whose value names a model, a config or a tokenizer (ids or local paths).
MODEL_FLAGS = (
    "--model_name_or_path",
    "--config_name",
    "--tokenizer_name",
    "--tokenizer_name_or_path",
    "--tokenizer_path",
    "--model_name",
    "--pretrained_model",
    "--pretrained_model_name_or_path",
    "--encoder_name_or_path",
    "--decoder_name_or_path",
    "--load_model_path",
)

_CONFIG_CLASS = re.compile(
    r"\b(XLMRoberta|Longformer|Roberta|Bert|GPT2|OpenAIGPT|T5|MT5|Bart|PLBart)Config\b"
)
_COMMENT_LINES = re.compile(r"(?m)^[ \t]*#.*$")
_TOKENIZER_CLASS = re.compile(r"\b(T5Tokenizer|T5TokenizerFast|RobertaTokenizer\w*)\b")
_CLASS_FAMILY = {
    "XLMRoberta": "xlm-roberta",
    "Longformer": "longformer",
    "Roberta": "roberta",
    "Bert": "roberta",
    "GPT2": "gpt2",
    "OpenAIGPT": "gpt2",
    "T5": "t5",
    "MT5": "t5",
    "Bart": "bart",
    "PLBart": "bart",
}


def family_of_id(value: str) -> str | None:
    """The family a model id or path names, from :data:`KNOWN_IDS`; None if unknown."""
    text = value.strip().rstrip("/").lower()
    tails = [text]
    parts = text.replace("\\", "/").split("/")
    if len(parts) >= 2:
        tails += ["/".join(parts[-2:]), parts[-1]]
    for known, family in KNOWN_IDS:
        name = known.rpartition("/")[2]  # a local copy keeps the hub name, not the org
        if any(tail.startswith(known) for tail in tails) or parts[-1].startswith(name):
            return family
    return None


def flag_values(args: Sequence[str], flags: Sequence[str]) -> list[tuple[int, str, str]]:
    """(index of the value, flag, value) for every ``--flag value`` / ``--flag=value``."""
    found = []
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in flags:
            if eq:
                found.append((i, name, value))
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                found.append((i + 1, name, args[i + 1]))
    return found


def _script_model_classes(source: str, model_type: str) -> str | None:
    """The family of ``model_type`` in the script's ``MODEL_CLASSES``-style table:
    ``'codet5': (T5Config, T5ForConditionalGeneration, RobertaTokenizer)``."""
    pattern = re.compile(rf"""['"]{re.escape(model_type)}['"]\s*:\s*\(\s*(\w+)([^)]*)\)""")
    match = pattern.search(_COMMENT_LINES.sub("", source))  # not a table commented out
    if match is None:
        return None
    named = _CONFIG_CLASS.search(match.group(1))
    if named is None:
        return None
    found = _CLASS_FAMILY[named.group(1)]
    tokenizer = _TOKENIZER_CLASS.search(match.group(2))
    if found == "t5" and tokenizer is not None and tokenizer.group(1).startswith("T5"):
        return "t5-spm"
    return found


def family(args: Sequence[str], source: str = "", default: str | None = None) -> str | None:
    """The family of the model this command runs (see the module's docstring for the order)."""
    from_ids = next(
        (f for _, _, v in reversed(flag_values(args, MODEL_FLAGS)) if (f := family_of_id(v))), None
    )
    types = flag_values(args, ("--model_type",))
    if types:
        model_type = types[-1][2].strip()
        from_script = _script_model_classes(source, model_type)
        found = MODEL_TYPES.get(model_type.lower()) or from_script
        if from_script == "xlm-roberta":  # a "roberta" type the script loads as XLM-R
            found = from_script
        if found == "t5" and model_type.lower() == "t5":  # which T5 tokenizer: see above
            found = from_script or (from_ids if from_ids == "t5-spm" else "t5")
        if found == "t5" and from_ids == "t5-reviewer":  # CodeReviewer's own default: codet5
            found = from_ids
        if found is not None:
            return found
    return from_ids or default


def model_type_value(family: str) -> str:
    """The ``--model_type`` value that names ``family`` (its T5 variants are both ``t5``)."""
    return "t5" if family.startswith("t5") else family


def substitute_models(args: Sequence[str], model_dir: str) -> list[str]:
    """``args`` with every model/config/tokenizer id or path replaced by ``model_dir``.

    ``--load_model_path`` names a fine-tuned checkpoint the run needs to exist, so it is dropped
    rather than pointed at a directory (the run then starts from the tiny model)."""
    out = list(args)
    drop: set[int] = set()
    for index, flag, value in flag_values(out, MODEL_FLAGS):
        if not value:
            continue
        if flag == "--load_model_path":
            drop.add(index)
            if not out[index].startswith("--"):
                drop.add(index - 1)
            continue
        out[index] = f"{flag}={model_dir}" if out[index].startswith(f"{flag}=") else model_dir
    return [arg for i, arg in enumerate(out) if i not in drop]
