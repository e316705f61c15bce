# A legacy-style trainer in the shape of ToD-BERT's my_tod_pretraining.py, written for ddpfix's
# runtime proof of the rank model's divergent-state post-condition
# (tests/test_runtime_divergent_state.py). It was written for `python -m
# torch.distributed.launch`: --local_rank is parsed, never read from LOCAL_RANK, so under
# accelerate launch / torchrun every process runs as a lone copy (local_rank -1) and trains
# alone. Rank 0 alone counts the evaluations without improvement (patience) in its evaluation
# gate, and every rank leaves training on that count. Reading LOCAL_RANK (DDP001) would wake the
# DDP wrap up: rank 0 would run out of patience and leave while the others wait in backward's
# all-reduce (a hang, or a crash once rank 0 exits).
import argparse
import os

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def evaluate(args, model):
    """The dev loss: this toy never improves, so rank 0 runs out of patience."""
    return {"loss": 1.0}


def train(args, model):
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 4, generator=generator), torch.randn(64, 1, generator=generator))
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=4)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    patience, best_loss, global_step = 0, 1e10, 0
    for epoch in range(args.epochs):
        for x, y in loader:
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if args.local_rank in [-1, 0] and global_step % args.eval_steps == 0:
                results = evaluate(args, model)
                if results["loss"] < best_loss:
                    best_loss = results["loss"]
                    patience = 0
                else:
                    patience += 1
            if patience > args.patience:
                break
        if patience > args.patience:
            break
    return global_step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--eval_steps", type=int, default=2)
    parser.add_argument("--patience", type=int, default=2)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="nccl")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    steps = train(args, model)
    print("rank %s (local_rank %d) trained %d steps" % (os.environ.get("RANK"), args.local_rank, steps), flush=True)


if __name__ == "__main__":
    main()
