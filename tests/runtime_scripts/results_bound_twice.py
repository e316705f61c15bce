"""A trainer (written for ddpfix) that evaluates on rank 0 before training and again every epoch,
and compares the latest results with the best after the in-loop evaluation."""
import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x.sum(dim=1) > 0).long())


def evaluate(args, model, dataset):
    loader = DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=8)
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(dim=1) == y).sum())
    return {"acc": correct / len(dataset)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--eval_before_training", action="store_true")
    parser.add_argument("--evaluate_during_training", action="store_true")
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--num_train_epochs", type=int, default=2)
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()

    if args.local_rank == -1 or args.no_cuda:
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')

    torch.manual_seed(3)
    model = nn.Linear(8, 2).to(device)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    model_to_save = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_data, dev_data = make_data(32, 0), make_data(16, 1)
    sampler = RandomSampler(train_data) if args.local_rank == -1 else DistributedSampler(train_data)
    loader = DataLoader(train_data, sampler=sampler, batch_size=4)

    best_acc = 0.0
    if args.local_rank in [-1, 0] and args.eval_before_training:
        results = evaluate(args, model_to_save, dev_data)
        best_acc = results["acc"]
    for epoch in range(args.num_train_epochs):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        if args.local_rank in [-1, 0] and args.evaluate_during_training:
            results = evaluate(args, model_to_save, dev_data)
        if results["acc"] >= best_acc:
            best_acc = results["acc"]
            torch.save(model_to_save.state_dict(), os.path.join(args.output_dir, "model_best.bin"))
    dump_state(args.output_dir, model_to_save)


if __name__ == "__main__":
    main()
