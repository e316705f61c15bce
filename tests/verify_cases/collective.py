"""A tiny distributed program for verify's own tests: --mode ok | hang | crash."""

import argparse
import time

import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--mode", choices=["ok", "hang", "crash"], default="ok")
args = parser.parse_args()

dist.init_process_group("gloo")
rank = dist.get_rank()
if args.mode == "hang":
    if rank == 1:
        dist.barrier()  # rank 0 never joins this one
    else:
        time.sleep(3600)
elif args.mode == "crash" and rank == 1:
    raise RuntimeError("rank 1 lost its data")
else:
    total = torch.ones(1)
    dist.all_reduce(total)
    assert total.item() == dist.get_world_size()
