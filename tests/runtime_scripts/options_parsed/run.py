# A script of that project (written for ddpfix): its options come from options.setup_args(),
# it shards its data when local_rank != -1, and nothing in the project initialises a process
# group (it was only ever run as one process).
import json
import os

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from fitter import Fitter
from options import setup_args


def main():
    args = setup_args()
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 4))
    if args.local_rank == -1:
        sampler = RandomSampler(data)
    else:
        sampler = DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=args.batch_size)
    model = Fitter(args, torch.nn.Linear(4, 1), loader).fit()
    path = os.path.join(args.output_dir, "done-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"local_rank": args.local_rank, "weight": model.weight.sum().item()}, handle)


if __name__ == "__main__":
    main()
