"""The script's argument list verify runs: the user's own flags, with sizes shrunk and the
harness's model, data and output paths put in.

The user's command is what will run on the cluster, so its flags stay (gradient accumulation,
evaluation switches, seeds, flags verify has never heard of). What cannot run here is replaced:
model ids and paths become the tiny model of the same family, data and output paths become the
sandbox's (the target's flags win for those), and sizes are capped so a run takes seconds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

#: Size flags and the largest value verify keeps (a larger value is lowered, never raised).
CAPS: dict[str, int] = {
    # sequence lengths (the tiny models have 512 positions; short is fast)
    "--block_size": 32,
    "--code_length": 32,
    "--nl_length": 32,
    "--data_flow_length": 16,
    "--max_source_length": 32,
    "--max_target_length": 8,
    "--max_seq_length": 32,
    "--max_length": 32,
    "--max_src_len": 32,
    "--max_tgt_len": 8,
    # batches
    "--train_batch_size": 2,
    "--eval_batch_size": 4,
    "--batch_size": 2,
    "--per_gpu_train_batch_size": 2,
    "--per_gpu_eval_batch_size": 4,
    "--per_device_train_batch_size": 2,
    "--per_device_eval_batch_size": 4,
    "--gradient_accumulation_steps": 2,  # kept on when it is on: it matters to correctness
    # how long
    "--num_train_epochs": 1,
    "--epoch": 1,
    "--epochs": 1,
    "--max_steps": 20,
    "--train_steps": 20,
    "--eval_steps": 10,
    "--save_steps": 10,
    "--logging_steps": 10,
    "--warmup_steps": 2,
    "--beam_size": 2,
    "--num_beams": 2,
    "--patience": 2,
}


def groups(args: Sequence[str]) -> list[list[str]]:
    """``args`` split into flag groups: a ``--flag`` with the values after it (a leading run of
    values without a flag is a group of its own)."""
    out: list[list[str]] = []
    for arg in args:
        if arg.startswith("--") or not out:
            out.append([arg])
        else:
            out[-1].append(arg)
    return out


def flag(group: Sequence[str]) -> str:
    return group[0].partition("=")[0]


def shrink(args: Sequence[str]) -> list[str]:
    """``args`` with every size flag of :data:`CAPS` capped (``--flag N`` and ``--flag=N``)."""
    out: list[str] = []
    for group in groups(args):
        name, eq, value = group[0].partition("=")
        cap = CAPS.get(name)
        if cap is not None and eq and _number(value) is not None:
            group = [f"{name}={_capped(value, cap)}", *group[1:]]
        elif cap is not None and len(group) > 1 and _number(group[1]) is not None:
            group = [name, _capped(group[1], cap), *group[2:]]
        out.extend(group)
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _capped(value: str, cap: int) -> str:
    number = _number(value)
    assert number is not None
    return value if number <= cap else str(cap)


def merge(user: Sequence[str], target: Sequence[str], harness: Collection[str]) -> list[str]:
    """The user's flags, then the target's. Where both give a flag, the user's value is kept,
    except for the target's ``harness`` flags (data, model and output paths), whose value
    replaces the user's."""
    supplied = {flag(g) for g in groups(target)} & set(harness)
    mine = [g for g in groups(user) if flag(g) not in supplied]
    given = {flag(g) for g in mine}
    theirs = [g for g in groups(target) if flag(g) not in given]
    return [arg for group in (*mine, *theirs) for arg in group]


def only_declared(args: Sequence[str], declared: set[str]) -> list[str]:
    """``args`` without the flag groups whose flag the script does not declare."""
    return [a for g in groups(args) if flag(g) in declared for a in g]


def set_value(args: Sequence[str], name: str, value: str) -> list[str]:
    """``args`` with the value of every ``name`` flag (``--flag v`` or ``--flag=v``) set to
    ``value``; a flag that is absent stays absent."""
    out: list[str] = []
    for group in groups(args):
        if flag(group) == name:
            group = [f"{name}={value}"] if "=" in group[0] else [name, value, *group[2:]]
        out.extend(group)
    return out
