"""The run's own arguments decide the tiny model's family and keep the user's flags (no torch)."""

from __future__ import annotations

import pytest

from patcher.verify import cmdline, families

CODEGPT = "microsoft/CodeGPT-small-java-adaptedGPT2"


@pytest.mark.parametrize(
    ("args", "source", "expected"),
    [
        (["--model_type=gpt2", f"--config_name={CODEGPT}"], "", "gpt2"),
        (
            ["--model_type", "roberta", "--model_name_or_path", "microsoft/codebert-base"],
            "",
            "roberta",
        ),
        (["--model_name_or_path", CODEGPT], "", "gpt2"),  # no --model_type: the id decides
        (["--model_name_or_path=Salesforce/codet5-base"], "", "t5"),
        # CoTexT and CodeTrans: T5 with a sentencepiece tokenizer
        (["--tokenizer_name", "razent/cotext-1-ccg"], "", "t5-spm"),
        (
            ["--model_name_or_path", "SEBIS/code_trans_t5_base_code_documentation_generation_java"],
            "",
            "t5-spm",
        ),
        (["--model_type", "cotext", "--model_name_or_path", "/m"], "", "t5-spm"),
        (["--model_type=codetrans"], "", "t5-spm"),
        # a plain t5 type: the tokenizer the script's table gives it decides, then the ids
        (
            ["--model_type", "t5", "--model_name_or_path", "Salesforce/codet5-base"],
            "MODEL_CLASSES = {'t5': (T5Config, T5ForConditionalGeneration, T5Tokenizer),\n"
            "                 'codet5': (T5Config, T5ForConditionalGeneration, RobertaTokenizer)}",
            "t5-spm",
        ),
        (["--model_type", "t5", "--model_name_or_path", "razent/cotext-2-cc"], "", "t5-spm"),
        (["--model_type", "t5", "--model_name_or_path", "Salesforce/codet5-base"], "", "t5"),
        (
            ["--model_type", "codet5"],
            "MODEL_CLASSES = {'codet5': (T5Config, T5ForConditionalGeneration, RobertaTokenizer)}",
            "t5",
        ),
        (["--model_name_or_path", "/models/graphcodebert-base"], "", "roberta"),  # a local copy
        (["--model_name_or_path", "uclanlp/plbart-base"], "", "bart"),
        # a model type only the script's own table knows
        (
            ["--model_type", "mycodet5"],
            "MODEL_CLASSES = {'mycodet5': (T5Config, T5Model, RobertaTokenizer)}",
            "t5",
        ),
        # LongCoder: a Longformer config, from the id or from a local copy named like it
        (["--model_name_or_path", "microsoft/longcoder-base"], "", "longformer"),
        (["--model_name_or_path=/models/longcoder-base"], "", "longformer"),
        (["--model_name_or_path", "/data/my-model"], "", None),  # nothing to go by
    ],
)
def test_family_from_the_command(args: list[str], source: str, expected: str | None) -> None:
    assert families.family(args, source) == expected


def test_the_targets_default_when_the_command_names_nothing() -> None:
    assert families.family(["--do_train"], "", default="roberta") == "roberta"


def test_model_ids_and_paths_become_the_tiny_model() -> None:
    args = [
        "--model_type=gpt2",
        f"--config_name={CODEGPT}",
        "--tokenizer_name",
        CODEGPT,
        "--load_model_path",
        "saved/model.bin",
        "--do_train",
    ]
    assert families.substitute_models(args, "/tiny") == [
        "--model_type=gpt2",
        "--config_name=/tiny",
        "--tokenizer_name",
        "/tiny",
        "--do_train",
    ]


def test_sizes_are_capped_never_raised() -> None:
    args = [
        "--block_size",
        "1024",
        "--train_batch_size=8",
        "--gradient_accumulation_steps",
        "4",
        "--eval_batch_size",
        "2",
        "--num_train_epochs",
        "10",
        "--learning_rate",
        "5e-5",
        "--beam_size=10",
        "--my_flag",
        "7",
    ]
    assert cmdline.shrink(args) == [
        "--block_size",
        "32",
        "--train_batch_size=2",
        "--gradient_accumulation_steps",
        "2",
        "--eval_batch_size",
        "2",
        "--num_train_epochs",
        "1",
        "--learning_rate",
        "5e-5",
        "--beam_size=2",
        "--my_flag",
        "7",
    ]


def test_merge_keeps_the_users_flags_and_the_harness_paths() -> None:
    user = ["--train_data_file", "../dataset/train.txt", "--epoch", "2", "--fp16", "--seed=7"]
    target = [
        "--train_data_file={data}/train.txt",
        "--epoch",
        "1",
        "--seed",
        "123456",
        "--do_train",
    ]
    formatted = [a.format(data="/sandbox") for a in target]
    assert cmdline.merge(user, formatted, {"--train_data_file"}) == [
        "--epoch",
        "2",
        "--fp16",
        "--seed=7",  # the user's values win ...
        "--train_data_file=/sandbox/train.txt",
        "--do_train",  # ... but not for data paths
    ]


def test_flags_a_sibling_script_does_not_declare_are_dropped() -> None:
    target = ["--output_dir=/o", "--model_type=roberta", "--epoch", "1", "--do_train"]
    assert cmdline.only_declared(target, {"--output_dir", "--do_train", "--epoch"}) == [
        "--output_dir=/o",
        "--epoch",
        "1",
        "--do_train",
    ]


def test_set_value_changes_a_flag_in_either_spelling_and_adds_none() -> None:
    args = ["--task", "clone", "--model_type", "codet5", "--do_train", "--sub_task=none"]
    assert cmdline.set_value(args, "--model_type", "t5") == [
        "--task",
        "clone",
        "--model_type",
        "t5",
        "--do_train",
        "--sub_task=none",
    ]
    assert cmdline.set_value(args, "--sub_task", "java")[-1] == "--sub_task=java"
    assert cmdline.set_value(["--do_train"], "--model_type", "t5") == ["--do_train"]


@pytest.mark.parametrize(
    ("family", "value"),
    [("t5", "t5"), ("t5-spm", "t5"), ("gpt2", "gpt2"), ("roberta", "roberta")],
)
def test_the_model_type_a_family_is_run_as(family: str, value: str) -> None:
    assert families.model_type_value(family) == value


def test_a_roberta_type_the_script_loads_as_xlm_roberta() -> None:
    source = (
        "#MODEL_CLASSES = {'roberta': (RobertaConfig, RobertaModel, RobertaTokenizer)}\n"
        "MODEL_CLASSES = {'roberta': (XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer)}\n"
    )
    assert families.family(["--model_type", "roberta"], source) == "xlm-roberta"
    assert families.family(["--model_type", "roberta"], source.splitlines()[0]) == "roberta"
    assert families.family(["--model_name_or_path", "xlm-roberta-base"]) == "xlm-roberta"
