"""A tiny distributed program for `ddpfix launch` tests: reports the batch it was given."""

import argparse
import os

import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--output_dir", required=True)
parser.add_argument("--train_batch_size", type=int, required=True)
parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
parser.add_argument("--exit_code", type=int, default=0)
args = parser.parse_args()

dist.init_process_group("gloo")
world = dist.get_world_size()
global_batch = args.train_batch_size * world * args.gradient_accumulation_steps
print(f"rank {dist.get_rank()}: global batch {global_batch}", flush=True)
with open(os.path.join(args.output_dir, f"rank{dist.get_rank()}.txt"), "w") as handle:
    handle.write(str(global_batch))
dist.destroy_process_group()
raise SystemExit(args.exit_code)
