"""Reliability: generated legacy-script variants, fuzzed input, kills in the middle of a batch.

Short runs always; ``DDPFIX_FUZZ_EXAMPLES=N`` makes the generated suites run N examples each.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from locality import unexplained_changes
from patcher.engine import fix_text, process_file
from patcher.registry import all_rules

EXAMPLES = int(os.environ.get("DDPFIX_FUZZ_EXAMPLES", "60"))
RULES = all_rules()
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# What the rules may touch: every line that changes must mention one of these.
TOUCHABLE = re.compile(
    r"local_rank|local-rank|LOCAL_RANK|RANK|DistributedSampler|Sampler|set_epoch|evaluate|"
    r"results|model|import|nccl|gloo|cuda|device|n_gpu|AdamW|ddpfix|init_process_group|"
    r"timeout|best_f1|save|do_test|do_predict|^$"
)

# How a do_test block may be gated (DDP011 adds a rank-0 condition to each).
TEST_FLAGS = (
    "{a}.do_test",
    "{a}.do_test or {a}.do_predict",
    "({a}.do_test)",
    "{a}.do_test if {a}.split else False",
)


def _script(
    args: str, indent: str, newline: str, comments: list[bool], nesting: str, test_flag: str
) -> str:
    """A legacy-style trainer in many surface forms, built from the hypothesis draws."""
    i1, i2, i3 = indent, indent * 2, indent * 3
    gate = f"if {args}.local_rank == -1 and {args}.evaluate_during_training:"
    lines = [
        "import argparse",
        "import torch",
        "from torch.utils.data import DataLoader, SequentialSampler",
        "from torch.utils.data.distributed import DistributedSampler",
        "",
        "",
        f"def evaluate({args}, model):",
        f"{i1}sampler = SequentialSampler(data) if {args}.local_rank == -1 "
        "else DistributedSampler(data)",
        f"{i1}return {{'f1': score(model, DataLoader(data, sampler=sampler))}}",
        "",
        "",
        f"def train({args}, model):",
        f"{i1}if {args}.local_rank != -1:",
        f"{i2}model = torch.nn.parallel.DistributedDataParallel("
        f"model, device_ids=[{args}.local_rank])",
        f"{i1}best_f1 = 0",
        f"{i1}for step in range(3):",
    ]
    body = [
        f"{i2}{gate}",
        f"{i3}results = evaluate({args}, model)",
        f"{i2}if results['f1'] > best_f1:",
        f"{i3}torch.save(model.state_dict(), 'best.bin')",
    ]
    if nesting == "if":
        body = [f"{i2}if True:"] + [indent + line for line in body]
    elif nesting == "with":
        body = [f"{i2}with torch.no_grad():"] + [indent + line for line in body]
    lines += body
    lines += [
        "",
        "",
        "def main():",
        f"{i1}parser = argparse.ArgumentParser()",
        f"{i1}parser.add_argument('--local_rank', type=int, default=-1)",
        f"{i1}{args} = parser.parse_args()",
        f"{i1}if {args}.do_eval and {args}.local_rank in [-1, 0]:",
        f"{i2}evaluate({args}, None)",
        f"{i1}if {test_flag.format(a=args)}:",
        f"{i2}with open('test.output', 'w') as f:",
        f"{i3}f.write(str(evaluate({args}, None)))",
    ]
    out = []
    for index, line in enumerate(lines):
        if comments[index % len(comments)] and line.strip() and not line.strip().startswith("if"):
            lead = line[: len(line) - len(line.lstrip())]
            out.append(f"{lead}# note {index}")
        out.append(line)
    return newline.join(out) + newline


variants = st.builds(
    _script,
    args=st.sampled_from(["args", "opts", "cfg", "hparams"]),
    indent=st.sampled_from(["    ", "  ", "\t"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    comments=st.lists(st.booleans(), min_size=1, max_size=7),
    nesting=st.sampled_from(["none", "if", "with"]),
    test_flag=st.sampled_from(TEST_FLAGS),
)


@SETTINGS
@given(variants)
def test_variants_stay_valid_idempotent_and_local(source: str) -> None:
    compile(source, "variant.py", "exec")
    output, findings = fix_text(source, RULES)
    compile(output, "variant.py", "exec")
    assert fix_text(output, RULES)[0] == output
    assert {"DDP001", "DDP003", "DDP004", "DDP005", "DDP006", "DDP011"} <= {
        f.code for f in findings
    }
    newline = "\r\n" if "\r\n" in source else "\n"
    assert output.count("\r\n") == output.count("\n") if newline == "\r\n" else "\r" not in output
    before = collections.Counter(line.strip() for line in source.splitlines())
    after = collections.Counter(line.strip() for line in output.splitlines())
    for line in (before - after) + (after - before):
        assert TOUCHABLE.search(line), f"untouchable line changed: {line!r}"
    # and as trees: nothing changes outside the statements the fixes name
    assert unexplained_changes(source, output, {f.line for f in findings if f.fixed}) == []


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_and_never_change_the_file(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "run.py"
    path.write_bytes(data)
    result = process_file(path, RULES, write=True)
    if result.error is not None:
        assert "\n" not in result.error
    if result.changed:  # whatever ddpfix writes is valid Python
        compile(path.read_bytes(), "run.py", "exec")
    else:
        assert path.read_bytes() == data


FIXTURE = (Path(__file__).parent / "fixtures" / "scripts" / "clone_bcb_style.in.py").read_bytes()


@SETTINGS
@given(st.integers(min_value=0, max_value=len(FIXTURE)), st.binary(max_size=8))
def test_truncated_scripts_never_crash(tmp_path_factory, cut: int, tail: bytes) -> None:
    data = FIXTURE[:cut] + tail
    path = tmp_path_factory.mktemp("cut") / "run.py"
    path.write_bytes(data)
    result = process_file(path, RULES, write=True)
    if result.changed:
        compile(path.read_bytes(), "run.py", "exec")
    else:
        assert path.read_bytes() == data


def test_sigkill_in_the_middle_of_a_batch_leaves_old_or_new_files(tmp_path: Path) -> None:
    original = FIXTURE.decode()
    patched, _ = fix_text(original, RULES)
    for index in range(60):
        (tmp_path / f"run_{index:03}.py").write_text(original)
    process = subprocess.Popen(
        [sys.executable, "-m", "patcher", "apply", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = sum((tmp_path / f"run_{i:03}.py").read_text() == patched for i in range(0, 60, 5))
        if done >= 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    states: collections.Counter[bool] = collections.Counter()
    for path in sorted(tmp_path.glob("run_*.py")):
        text = path.read_text()
        assert text in (original, patched), path
        states[text == patched] += 1
    assert states[True] and states[False]  # killed mid-batch, really
    # A kill between writing a temp file and renaming it can leave one behind; plant one
    # from a dead writer (pid 2**22 + 1 is beyond pid_max here) as well: the next run removes both.
    stale = tmp_path / f".run_000.py.{2**22 + 1}.abcd.ddpfix.tmp"
    stale.write_text("partial")
    subprocess.run([sys.executable, "-m", "patcher", "apply", str(tmp_path)], capture_output=True)
    assert not list(tmp_path.glob(".*.ddpfix.tmp"))
    assert {p.read_text() for p in tmp_path.glob("run_*.py")} == {patched}


# --- structures from unseen scripts (issue 9): every rank's view must survive the rewrite ----

#: Pieces a trainer's epoch loop may hold, each a structure a naive rewrite got wrong.
PIECES = {
    # the seq2seq template: an evaluation block that also resets accumulation state
    "state_reset": [
        "if {a}.do_eval and eval_flag:",
        "{i}tr_loss = 0",
        "{i}nb_tr_steps = 0",
        "{i}eval_flag = False",
        "{i}bleu = score(model, {a}.dev_filename)",
        "{i}with open('dev.output', 'w') as f:",
        "{i}{i}f.write(str(bleu))",
    ],
    # an accelerate block: gathering is a collective, never gated
    "library_collective": [
        "if {a}.do_predict:",
        "{i}preds = accelerator.gather_for_metrics(predict(model))",
        "{i}accelerator.save_state('last')",
    ],
    # a sampler built inside the epoch loop
    "sampler_in_loop": [
        "sampler = RandomSampler(data) if {a}.local_rank == -1 else DistributedSampler(data)",
        "loader = DataLoader(data, sampler=sampler)",
    ],
    # results bound again under the in-loop gate
    "results_again": [
        "if {a}.local_rank in [-1, 0] and {a}.evaluate_during_training:",
        "{i}results = evaluate({a}, model)",
        "if results['f1'] > best_f1:",
        "{i}best_f1 = results['f1']",
        "{i}torch.save(model.state_dict(), 'model_best.pt')",
    ],
}


def _trainer(args: str, indent: str, pieces: list[str], reload: bool) -> str:
    i = indent
    lines = [
        "import torch",
        "from torch.utils.data import DataLoader, RandomSampler",
        "from torch.utils.data.distributed import DistributedSampler",
        "",
        "",
        f"def train({args}, model, optimizer, data, accelerator):",
        f"{i}tr_loss, nb_tr_steps, best_f1, eval_flag = 0, 0, 0, True",
        f"{i}if {args}.local_rank in [-1, 0] and {args}.eval_before_training:",
        f"{i}{i}results = evaluate({args}, model)",
        f"{i}loader = DataLoader(data)",
        f"{i}for epoch in range(3):",
    ]
    for name in pieces:
        if name == "sampler_in_loop":
            lines += [f"{i}{i}" + line.format(a=args, i=i) for line in PIECES[name]]
    lines += [
        f"{i}{i}for batch in loader:",
        f"{i}{i}{i}loss = model(batch)",
        f"{i}{i}{i}tr_loss += loss.item()",
        f"{i}{i}{i}nb_tr_steps += 1",
        f"{i}{i}{i}loss.backward()",
        f"{i}{i}{i}if nb_tr_steps % {args}.gradient_accumulation_steps == 0:",
        f"{i}{i}{i}{i}optimizer.step()",
        f"{i}{i}{i}{i}eval_flag = True",
    ]
    for name in pieces:
        if name != "sampler_in_loop":
            lines += [f"{i}{i}" + line.format(a=args, i=i) for line in PIECES[name]]
    if reload:
        lines.append(f"{i}model.load_state_dict(torch.load('model_best.pt'))")
    lines += ["", "", "def parse(parser):", f"{i}parser.add_argument('--local_rank', type=int)"]
    return "\n".join(lines) + "\n"


trainers = st.builds(
    _trainer,
    args=st.sampled_from(["args", "opts", "cfg"]),
    indent=st.sampled_from(["    ", "  ", "\t"]),
    pieces=st.lists(st.sampled_from(sorted(PIECES)), min_size=1, max_size=4, unique=True),
    reload=st.booleans(),
)


@SETTINGS
@given(trainers)
# a module of functions with no init_process_group: whether its caller sets a group up is not
# known here, so its barriers count (the dormant-rank file check once withdrew DDP008 here)
@example(_trainer(args="args", indent="    ", pieces=["results_again"], reload=True))
def test_rank_structures_keep_every_rank_correct(source: str) -> None:
    """Whatever the rules rewrite, the output breaks no post-condition of the rank model that
    the input kept (no collective on a subset of ranks, no name unbound or out of step on a
    rank that reads it, no unordered read of a rank-0 file), and each structure is handled."""
    import libcst as cst

    from patcher.registry import postconditions
    from patcher.tree import Tree
    from patches._ranks import violations

    compile(source, "variant.py", "exec")
    output, findings = fix_text(source, RULES)
    compile(output, "variant.py", "exec")
    assert fix_text(output, RULES)[0] == output
    before = violations(Tree(cst.parse_module(source), source))
    after = violations(Tree(cst.parse_module(output), output))
    assert set(after) <= set(before), [after[k].message for k in set(after) - set(before)]
    assert postconditions()  # the engine checks the same model
    assert not [f for f in findings if "not rewritten" in f.message], findings
    if "eval_flag = False" in source:  # the resets stay on every rank, the rest is gated
        block = output.split("eval_flag = False", 1)[1]
        assert "RANK" in block.split("bleu = score", 1)[0]
    if "gather_for_metrics" in source:
        assert "do_predict:" in output  # never gated
    if "torch.save(model.state_dict(), 'model_best.pt')" in source and "torch.load" in source:
        assert "torch.distributed.barrier()" in output.split("torch.load", 1)[0]
