"""A tiny distributed program for verify's own tests: --mode ok | hang | crash | killed | write."""

import argparse
import os
import signal
import time

import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--mode", choices=["ok", "hang", "crash", "killed", "write"], default="ok")
parser.add_argument("--path", default="")
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
elif args.mode == "killed" and rank == 1:
    os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer, say
elif args.mode == "killed":
    dist.barrier()  # waits for rank 1, which is gone
elif args.mode == "write" and rank == 0:
    with open(os.path.join(args.path, "results.txt"), "w") as handle:
        handle.write("0\n")
else:
    total = torch.ones(1)
    dist.all_reduce(total)
    assert total.item() == dist.get_world_size()
