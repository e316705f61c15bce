"""A DDP trainer (written for ddpfix, in the style of 2022 commit-message generators) that keeps
its losses in module-level lists and writes them out after ``main()`` returns, from every
process. The evaluation, whose losses go into ``eval_losses``, runs on rank 0 alone: the other
ranks write an empty eval_loss.txt over rank 0's."""
import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

train_losses = []
eval_losses = []


def dump_state(output_dir, model):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    os.chdir(args.output_dir)
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    torch.manual_seed(5)
    model = nn.Linear(4, 2)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = TensorDataset(x, (x.sum(dim=1) > 0).long())
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for epoch in range(3):
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            train_losses.append(loss.item())
        if args.local_rank == -1 or torch.distributed.get_rank() == 0:
            inner = model.module if hasattr(model, "module") else model
            with torch.no_grad():
                eval_losses.append(nn.functional.cross_entropy(inner(x), data.tensors[1]).item())
    dump_state(args.output_dir, model.module if hasattr(model, "module") else model)


if __name__ == "__main__":
    main()
    with open("train_loss.txt", "w") as file:
        for i, loss in enumerate(train_losses):
            file.write(f"{i}:{loss}\n")
    with open("eval_loss.txt", "w") as file:
        for i, loss in enumerate(eval_losses):
            file.write(f"{i}:{loss}\n")
