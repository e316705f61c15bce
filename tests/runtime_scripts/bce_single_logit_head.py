"""A code-search classifier (written for ddpfix, in the style of CodeXGLUE's WebQuery): a
matching head ends in Linear(hidden, 1) and a Sigmoid, and its BCELoss gets the labels the
dataset stacks from scalars, one per example. Each process leaves its loss and predictions."""
import argparse
import json
import os

import torch
import torch.nn as nn
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


class Model(nn.Module):
    def __init__(self, hidden):
        super(Model, self).__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden * 2, hidden), nn.Tanh(), nn.Linear(hidden, 1), nn.Sigmoid())
        self.loss_func = nn.BCELoss()

    def forward(self, code_vec, nl_vec, labels):
        logits = self.mlp(torch.cat((nl_vec, code_vec), 1))
        loss = self.loss_func(logits, labels.float())
        predictions = (logits > 0.5).int()  # (Batch, )
        return loss, predictions


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    torch.manual_seed(0)
    model = Model(4)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    codes, nls = torch.randn(16, 4), torch.randn(16, 4)
    data = TensorDataset(codes, nls, torch.tensor([i % 2 for i in range(16)]))
    sampler = DistributedSampler(data, shuffle=False) if args.local_rank != -1 else None
    losses = []
    for code_vec, nl_vec, labels in DataLoader(data, batch_size=4, sampler=sampler):
        loss, predictions = model(code_vec, nl_vec, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    rank = torch.distributed.get_rank() if args.local_rank != -1 else 0
    with open(os.path.join(args.output_dir, "losses-%d.json" % rank), "w") as handle:
        json.dump(losses, handle)
    dump_state(args.output_dir, model)


if __name__ == "__main__":
    main()
