"""A classifier trainer (written for ddpfix's runtime proof of DDP004 on evaluations known by what
they do): train() wraps the model in DDP and, every few steps, local rank 0 alone scores the dev
set with valid_acc(args, model, ...), a helper whose name says nothing of evaluation but which
only runs the model forward. The model has a buffer, as RoBERTa has position_ids: the wrapper's
forward broadcasts it, a collective the other ranks never join."""
import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

N_DEV = 21


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 3)
        self.register_buffer("position_ids", torch.arange(6))

    def forward(self, x, mask):
        return self.encoder(x * mask)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g))


def valid_acc(args, model, eval_dataset, eval_when_training=False):
    eval_sampler = SequentialSampler(eval_dataset) if args.local_rank == -1 else DistributedSampler(eval_dataset)
    eval_dataloader = DataLoader(eval_dataset, sampler=eval_sampler, batch_size=4)
    if args.n_gpu > 1 and eval_when_training is False:
        model = torch.nn.DataParallel(model)
    model.eval()
    seen, correct = 0, 0
    for x, y in eval_dataloader:
        with torch.no_grad():
            output = model(x, x.ne(0).float())
        seen += len(y)
        correct += int((output.argmax(-1) == y).sum())
    model.train()
    return {"accuracy": correct / seen, "seen": seen}


def train(args, model, train_dataset, valid_dataset):
    sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    loader = DataLoader(train_dataset, sampler=sampler, batch_size=4, drop_last=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    global_step = 0
    for epoch in range(2):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x, x.ne(0).float()), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if args.local_rank in [-1, 0] and global_step % 3 == 0:
                results = valid_acc(args, model, valid_dataset, eval_when_training=True)
                with open(os.path.join(args.output_dir, "dev_scores.txt"), "a") as f:
                    f.write("%d %d %.4f\n" % (global_step, results["seen"], results["accuracy"]))
    return global_step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    args.n_gpu = 0 if args.local_rank == -1 else 1
    torch.manual_seed(5)
    model = Classifier()
    train(args, model, make_data(48, 0), make_data(N_DEV, 1))
    dump_state(args.output_dir, model)


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


if __name__ == "__main__":
    main()
