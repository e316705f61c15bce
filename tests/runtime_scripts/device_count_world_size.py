"""A torch.distributed.launch-era trainer (written for ddpfix, in the style of the PyTorch DDP
tutorials people copy): it takes the number of GPUs as the number of processes, splits the
batch by it and averages every all-reduced loss by it. Each process records its own mean loss
and the averaged one, and the batch it took."""
import argparse
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
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


def reduce_mean(tensor, nprocs):
    rt = tensor.clone()
    dist.all_reduce(rt, op=dist.ReduceOp.SUM)
    rt /= nprocs
    return rt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", default=0, type=int, help="node rank for distributed training")
    parser.add_argument("--batch_size", default=8, type=int)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()

    args.nprocs = torch.cuda.device_count()
    dist.init_process_group(backend="gloo")
    torch.manual_seed(0)
    model = DDP(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    args.batch_size = int(args.batch_size / args.nprocs)

    data = TensorDataset(torch.arange(64.0).view(16, 4) / 64, torch.ones(16, 1))
    loader = DataLoader(data, batch_size=args.batch_size, sampler=DistributedSampler(data, shuffle=False))
    local, averaged = [], []
    for inputs, labels in loader:
        loss = torch.nn.functional.mse_loss(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        local.append(loss.item())
        averaged.append(reduce_mean(loss.detach(), args.nprocs).item())
    with open(os.path.join(args.output_dir, "losses-%d.json" % dist.get_rank()), "w") as handle:
        json.dump({"batch_size": args.batch_size, "local": local, "averaged": averaged}, handle)
    dump_state(args.output_dir, model)


if __name__ == "__main__":
    main()
