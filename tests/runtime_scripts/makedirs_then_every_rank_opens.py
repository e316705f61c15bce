"""The test stage of a multi-task seq2seq trainer (written for ddpfix, in the style of CodeT5
multi-task forks): for each task it makes ``summary/`` if missing and opens a log there that it
keeps open for the whole stage, then scores every task and saves its model. Rank 0 reaches the
stage later than the others (it alone restores the best checkpoints first), so a directory it
alone made would not yet exist when the other ranks open their logs in it."""
import argparse
import json
import os
import time

import torch


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def restore_best(args, model):
    """Stands in for reloading each task's best checkpoint: slow, and on the first process only
    (its files are on the first node's disk)."""
    if args.local_rank in [-1, 0]:
        time.sleep(3)


def eval_bleu(args, model, data, task):
    with torch.no_grad():
        return {"bleu": float(model(data).sum())}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--do_test", action="store_true")
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    test_sets = {"summarize_python": torch.ones(2, 4), "translate_java": torch.zeros(2, 4)}
    fa_dict = {}
    if args.do_test:
        restore_best(args, model)
        all_tasks = list(test_sets)
        for cur_task in all_tasks:
            summary_dir = os.path.join(args.output_dir, "summary")
            if not os.path.exists(summary_dir):
                os.makedirs(summary_dir)
            fa_dict[cur_task] = open(os.path.join(summary_dir, "{}.log".format(cur_task)), "a+")
        for cur_task in all_tasks:
            args.task = cur_task.split("_")[0]
            result = eval_bleu(args, model, test_sets[cur_task], cur_task)
            fa_dict[cur_task].write("[%s] bleu-4: %.2f\n" % (cur_task, result["bleu"]))
            torch.save(model.state_dict(), os.path.join(args.output_dir, cur_task + ".bin"))
    for cur_task in all_tasks:
        fa_dict[cur_task].close()
    dump_state(args.output_dir, model)


if __name__ == "__main__":
    main()
