# coding=utf-8
# A legacy-style pointer classifier in the shape of CodeBERT-Ptr's train_classifier.py (written for
# ddpfix's runtime proof of issue 9, F8). The script has a DistributedDataParallel branch it never
# ran: its training loop calls the model's own methods (`model._run_batch(...)`,
# `model._loss(...)`), which the DDP wrapper does not have. Under torchrun / accelerate launch
# --local_rank stays -1 and every process trains alone to the end; reading LOCAL_RANK would make
# the wrap live and every rank would die on AttributeError at its first step.
import argparse
import json
import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

FEATURES = 8


class PointerClassifier(nn.Module):
    def __init__(self):
        super(PointerClassifier, self).__init__()
        self.encoder = nn.Sequential(nn.Linear(FEATURES, 16), nn.Tanh())
        self.head = nn.Linear(16, 2)

    def _run_batch(self, features, mask=None):
        hidden = self.encoder(features)
        return self.head(hidden)

    def _loss(self, logits, labels):
        return nn.functional.cross_entropy(logits, labels)


def set_seed(args):
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)


def build_dataset(n_examples, seed):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n_examples, FEATURES, generator=generator)
    labels = (features[:, 0] > 0).long()
    return TensorDataset(features, labels)


def evaluate(args, model, dataset):
    loader = DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=8)
    correct = 0
    model.eval()
    with torch.no_grad():
        for features, labels in loader:
            logits = model._run_batch(features.to(args.device), mask=None)
            correct += (logits.argmax(-1) == labels.to(args.device)).sum().item()
    model.train()
    return correct / len(dataset)


def train(args, train_dataset, model):
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.local_rank],
                                                          output_device=args.local_rank)
    for epoch in range(args.num_train_epochs):
        for features, labels in train_dataloader:
            model.train()
            outputs = model._run_batch(features.to(args.device), mask=None)
            loss = model._loss(outputs, labels.to(args.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        print("epoch %d accuracy %.3f" % (epoch, evaluate(args, model, train_dataset)), flush=True)
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True)
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.1, type=float)
    parser.add_argument("--num_train_epochs", default=2, type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()

    if args.local_rank == -1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')
    args.device = device
    set_seed(args)

    model = PointerClassifier().to(args.device)
    model = train(args, build_dataset(32, seed=0), model)
    dump_state(args.output_dir, model.module if hasattr(model, 'module') else model)


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
