# A legacy-style multi-task trainer in the shape of CodeT5's run_multi_gen.py, written for
# ddpfix's runtime proof of the rank model's divergent-state post-condition
# (tests/test_runtime_divergent_state.py). The data are sharded with a DistributedSampler but the
# model is never wrapped in DDP (only DataParallel on a multi-GPU machine): each rank trains its
# own copy. Rank 0 alone evaluates and marks a task finished after it stops improving; every rank
# skips finished tasks at the top of the loop and leaves once every task is skipped. Without a
# collective in the loop that is harmless: rank 0 stops early, the other ranks train to the step
# limit. Wrapping the model (DDP014) would make every backward an all-reduce that the ranks then
# pair across different tasks, and rank 0 would leave while the others wait: a hang or a crash.
import argparse
import os
import random

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

TASKS = ("summarize", "translate")


def batches_forever(loader):
    while True:
        for batch in loader:
            yield batch


def score_task(model, name):
    """The dev score of a task: this toy never improves, so every task early-stops."""
    return 0.0


def train(args, model):
    streams = {}
    for index, name in enumerate(TASKS):
        generator = torch.Generator().manual_seed(index)
        data = TensorDataset(torch.randn(64, 4, generator=generator), torch.randn(64, 1, generator=generator))
        sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
        streams[name] = batches_forever(DataLoader(data, sampler=sampler, batch_size=4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    finished = {name: 0 for name in TASKS}
    misses = {name: 0 for name in TASKS}
    best = {name: 0.0 for name in TASKS}
    chooser = random.Random(args.seed)  # the same task sequence on every rank
    step, skipped = 0, 0
    while step < args.max_steps:
        name = chooser.choice(TASKS)
        if finished[name]:
            skipped += 1
            if skipped > 20:
                break
            continue
        skipped = 0
        x, y = next(streams[name])
        model.train()
        loss = ((model(x.to(args.device)) - y.to(args.device)) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        step += 1
        if args.local_rank in [-1, 0] and step % args.eval_steps == 0:
            if score_task(model, name) <= best[name]:
                misses[name] += 1
                if misses[name] > 1:
                    finished[name] = 1
    return step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_steps", type=int, default=60)
    parser.add_argument("--eval_steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if os.environ.get("LOCAL_RANK") is not None:
        args.local_rank = int(os.environ["LOCAL_RANK"])
    if args.local_rank == -1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend="nccl")
        args.n_gpu = 1
    args.device = device
    torch.manual_seed(args.seed)
    model = torch.nn.Linear(4, 1).to(args.device)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    steps = train(args, model)
    print("rank %s trained %d steps" % (os.environ.get("RANK"), steps), flush=True)


if __name__ == "__main__":
    main()
