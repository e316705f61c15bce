"""A DDP trainer (written for ddpfix, in the style of 2021 clone-detection code) that evaluates
inside the training loop on every rank, saves checkpoints there, and stops early from what the
evaluation said: the block writes files and updates state the loop reads."""
import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def dump_state(output_dir, model):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def evaluate(model, data):
    loader = DataLoader(data, sampler=SequentialSampler(data), batch_size=8)
    correct = 0
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(dim=1) == y).sum())
    model.train()
    return correct / len(data)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--patience", type=int, default=1)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    torch.manual_seed(5)
    model = nn.Linear(4, 2)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = TensorDataset(x, (x.sum(dim=1) > 0).long())
    dev = TensorDataset(x[:16], data.tensors[1][:16])
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    best_acc, not_inc, is_early_stop = -1.0, 0, False
    for epoch in range(6):
        for step, (xb, yb) in enumerate(loader):
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
            optimizer.zero_grad()
            if (step + 1) % 4 == 0 and args.do_eval:
                acc = evaluate(model, dev)
                last_dir = os.path.join(args.output_dir, 'checkpoint-last')
                if not os.path.exists(last_dir):
                    os.makedirs(last_dir)
                model_to_save = model.module if hasattr(model, 'module') else model
                torch.save(model_to_save.state_dict(), os.path.join(last_dir, "model.bin"))
                if acc > best_acc:
                    not_inc = 0
                    best_acc = acc
                    best_dir = os.path.join(args.output_dir, 'checkpoint-best')
                    if not os.path.exists(best_dir):
                        os.makedirs(best_dir)
                    torch.save(model_to_save.state_dict(), os.path.join(best_dir, "model.bin"))
                else:
                    not_inc += 1
                    if not_inc > args.patience:
                        is_early_stop = True
                        break
        if is_early_stop:
            break
    dump_state(args.output_dir, model.module if hasattr(model, "module") else model)


if __name__ == "__main__":
    main()
