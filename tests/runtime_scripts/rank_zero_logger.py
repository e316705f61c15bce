"""A DDP trainer (written for ddpfix) whose metrics writer exists on the main process only, but
is used in the evaluation every rank runs, in the style of 2021 seq2seq scripts."""
import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


class MetricsWriter(object):
    """A tiny stand-in for tensorboard's SummaryWriter: one JSON line per scalar."""

    def __init__(self, path):
        self.handle = open(path, "w")

    def add_scalar(self, tag, value, step):
        self.handle.write(json.dumps({"tag": tag, "value": value, "step": step}) + "\n")

    def close(self):
        self.handle.close()


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
    parser.add_argument("--data_num", type=int, default=-1)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    torch.manual_seed(3)
    model = nn.Linear(4, 2)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    if args.local_rank in [-1, 0] and args.data_num == -1:
        tb_writer = MetricsWriter(os.path.join(args.output_dir, "metrics.jsonl"))
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(x, (x.sum(dim=1) > 0).long())
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        for xb, yb in DataLoader(data, sampler=sampler, batch_size=4):
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
            optimizer.zero_grad()
        with torch.no_grad():
            dev_loss = nn.functional.cross_entropy(model(x), data.tensors[1]).item()
        if args.data_num == -1:
            tb_writer.add_scalar("dev_loss", dev_loss, epoch)
    if args.local_rank in [-1, 0] and args.data_num == -1:
        tb_writer.close()
    dump_state(args.output_dir, model.module if hasattr(model, "module") else model)


if __name__ == "__main__":
    main()
