# coding=utf-8
"""A legacy-style trainer that builds a new sampler and DataLoader every epoch (issue 9, class 2).

Written for ddpfix's runtime tests (tests/test_runtime_ddp007.py): the structure of the scripts
that load one shard of the corpus per epoch, with the 2020-era --local_rank / NCCL setup. Each
process records the order in which it visited the examples in every epoch.
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
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


def load_shard(epoch, n_examples=32):
    """ One epoch's shard of the (synthetic) corpus: the same examples, re-read every epoch """
    generator = torch.Generator().manual_seed(1234)
    features = torch.randn(n_examples, 8, generator=generator)
    labels = features.sum(dim=1, keepdim=True)
    return TensorDataset(torch.arange(n_examples), features, labels)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True,
                        help="The output directory where the model checkpoints will be written.")
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.05, type=float)
    parser.add_argument("--num_train_epochs", default=2, type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action='store_true', help="Avoid using CUDA when available")
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()

    # Setup CUDA, GPU & distributed training
    if args.local_rank == -1 or args.no_cuda:
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:  # Initializes the distributed backend which will take care of sychronizing nodes/GPUs
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')
        args.n_gpu = 1
    args.device = device

    torch.manual_seed(args.seed)
    model = nn.Linear(8, 1)
    model.to(args.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.local_rank],
                                                          output_device=args.local_rank)

    orders = []
    global_step = 0
    model.train()
    for epoch in range(args.num_train_epochs):
        train_dataset = load_shard(epoch)
        train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
        train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)

        order = []
        for step, batch in enumerate(train_dataloader):
            indices, inputs, labels = batch
            order.extend(indices.tolist())
            loss = ((model(inputs.to(args.device)) - labels.to(args.device)) ** 2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
        orders.append(order)

    model_to_save = model.module if hasattr(model, 'module') else model
    if args.local_rank in [-1, 0]:
        torch.save(model_to_save.state_dict(), os.path.join(args.output_dir, "pytorch_model.bin"))
    with open(os.path.join(args.output_dir, "orders-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "orders": orders}, handle)
    dump_state(args.output_dir, model_to_save)


if __name__ == "__main__":
    main()
