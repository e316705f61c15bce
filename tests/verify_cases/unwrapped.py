"""A legacy-style trainer for verify's own tests: it shards its data with a DistributedSampler.

--mode nowrap (the default) never wraps the model in DistributedDataParallel, so every rank
trains its own model on its own shard (CodeT5's run_gen.py does this); --mode ddp wraps it;
--mode gated wraps it but steps the optimizer on rank 0 only.
"""

import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

parser = argparse.ArgumentParser()
parser.add_argument("--mode", choices=["nowrap", "ddp", "gated"], default="nowrap")
parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", -1)))
args = parser.parse_args()

torch.manual_seed(42)  # the same initial model on every rank
dist.init_process_group(backend="gloo")
features = torch.randn(64, 8)
dataset = TensorDataset(features, features.sum(dim=1, keepdim=True))
sampler = DistributedSampler(dataset)
loader = DataLoader(dataset, sampler=sampler, batch_size=8)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
if args.mode != "nowrap":
    model = DistributedDataParallel(model)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
for epoch in range(2):
    sampler.set_epoch(epoch)
    for inputs, targets in loader:
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        if args.mode != "gated" or dist.get_rank() == 0:
            optimizer.step()
        optimizer.zero_grad()
print(f"rank {dist.get_rank()}: last loss {loss.item():.4f}", flush=True)
dist.destroy_process_group()
