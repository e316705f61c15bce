"""A template-style trainer (written for ddpfix, in the style of an NER fork of the HF
template): every logging step it evaluates under ``local_rank == -1 and
--evaluate_during_training``, logs the loss, and then compares the results with the best."""

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
    parser.add_argument("--evaluate_during_training", action="store_true")
    parser.add_argument("--logging_steps", type=int, default=4)
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()

    if args.local_rank == -1:
        device = torch.device("cpu")
    else:
        device = torch.device("cpu")
        torch.distributed.init_process_group(backend="gloo")

    torch.manual_seed(3)
    model = nn.Linear(8, 2).to(device)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    model_to_save = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_data, dev_data = make_data(32, 0), make_data(16, 1)
    sampler = RandomSampler(train_data) if args.local_rank == -1 else DistributedSampler(train_data)
    loader = DataLoader(train_data, sampler=sampler, batch_size=2)

    best_acc, tr_loss, logging_loss, global_step = 0.0, 0.0, 0.0, 0
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tr_loss += loss.item()
        global_step += 1
        if args.local_rank in [-1, 0] and global_step % args.logging_steps == 0:
            if args.local_rank == -1 and args.evaluate_during_training:
                results = evaluate(args, model_to_save, dev_data)
            print(
                "logged loss at step %d: %.4f"
                % (global_step, (tr_loss - logging_loss) / args.logging_steps),
                flush=True,
            )
            logging_loss = tr_loss
            if results["acc"] >= best_acc:
                best_acc = results["acc"]
                torch.save(
                    model_to_save.state_dict(), os.path.join(args.output_dir, "model_best.bin")
                )
    dump_state(args.output_dir, model_to_save)


if __name__ == "__main__":
    main()
