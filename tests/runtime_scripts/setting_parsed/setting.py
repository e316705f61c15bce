# The setup module of a project (written for ddpfix): parse() declares --local_rank (no
# default) and parses; init_distributed() sets up the process group from the launcher's
# environment.
import argparse

import torch.distributed as dist


def parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_epochs", type=int, default=5)
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--local_rank", type=int)
    args = parser.parse_args()
    return args


def init_distributed():
    dist.init_process_group(backend="gloo", init_method="env://")
