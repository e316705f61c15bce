"""A half-distributed seq2seq trainer (written for ddpfix, in the style of CodeT5's run_gen.py):
its process group and DistributedSampler are there, its model comes from the project's
factory and is only ever wrapped in DataParallel."""
import argparse
import json
import os

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from models import build_or_load_gen_model


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--model_name_or_path", default="tiny")
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    args.n_gpu = torch.cuda.device_count() if args.local_rank == -1 else 1
    model = build_or_load_gen_model(args)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = TensorDataset(torch.randn(16, 4, generator=torch.Generator().manual_seed(1)))
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    for epoch in range(2):
        for (x,) in DataLoader(data, sampler=sampler, batch_size=4):
            loss = model(x).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    state = model.module if hasattr(model, "module") else model
    dump_state(args.output_dir, state)


if __name__ == "__main__":
    main()
