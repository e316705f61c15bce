"""A template-style trainer (written for ddpfix, in the style of xtreme's run_tag.py) whose rank
stays dormant under a modern launcher: DDP001 withholds the LOCAL_RANK read because of the
rank-0 early stop in the save block, so every launched process is a lone run. Every logging
step evaluates (``local_rank == -1 and --evaluate_during_training``); the evaluation iterates a
DataLoader, which draws a seed from the global random generator that the dropout draws from."""

import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def dump_state(output_dir, model, steps):
    """Leave this process's end state for the test: its rank, steps and a parameter hash."""
    import hashlib

    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump(
            {"rank": os.environ.get("RANK"), "params": digest.hexdigest(), "steps": steps}, handle
        )


def evaluate(args, model):
    generator = torch.Generator().manual_seed(7)
    data = TensorDataset(
        torch.randn(16, 4, generator=generator), torch.randn(16, 1, generator=generator)
    )
    model.eval()
    with torch.no_grad():
        loss = sum(
            float(((model(x) - y) ** 2).mean())
            for x, y in DataLoader(data, sampler=SequentialSampler(data), batch_size=4)
        )
    model.train()
    return {"score": -loss}


def train(args, model):
    generator = torch.Generator().manual_seed(3)
    data = TensorDataset(
        torch.randn(64, 4, generator=generator), torch.randn(64, 1, generator=generator)
    )
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    global_step, best, patience = 0, -1e9, 0
    for _ in range(args.epochs):
        for x, y in loader:
            loss = (nn.functional.dropout(model(x), 0.3) - y).pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if args.local_rank in [-1, 0] and global_step % args.logging_steps == 0:
                if args.local_rank == -1 and args.evaluate_during_training:
                    results = evaluate(args, model)
            if args.local_rank in [-1, 0] and global_step % args.save_steps == 0:
                result = evaluate(args, model)
                if result["score"] > best:
                    best, patience = result["score"], 0
                else:
                    patience += 1
                    if patience > args.patience:
                        return global_step
    return global_step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--logging_steps", type=int, default=2)
    parser.add_argument("--save_steps", type=int, default=5)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--evaluate_during_training", action="store_true")
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    torch.manual_seed(1)
    model = nn.Linear(4, 1)
    steps = train(args, model)
    dump_state(args.output_dir, model, steps)


if __name__ == "__main__":
    main()
