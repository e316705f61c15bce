"""A DDP trainer (written for ddpfix, in the style of 2019 reading-comprehension code) that saves
a checkpoint every few steps from every rank: ``os.makedirs`` of the step directory without
``exist_ok`` and ``torch.save`` into it, outside any rank test. The slower rank dies on
FileExistsError, or both write the same file."""
import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


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
    parser.add_argument("--save_steps", type=int, default=4)
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
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    global_step = 0
    for epoch in range(2):
        for xb, yb in loader:
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if global_step % args.save_steps == 0:
                step_dir = os.path.join(args.output_dir, "{}steps".format(global_step))
                os.makedirs(step_dir)
                model_to_save = model.module if hasattr(model, "module") else model
                torch.save(model_to_save.state_dict(), os.path.join(step_dir, "model.bin"))
    dump_state(args.output_dir, model.module if hasattr(model, "module") else model)


if __name__ == "__main__":
    main()
