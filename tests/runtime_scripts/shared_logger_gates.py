# coding=utf-8
"""A legacy-style trainer whose rank-0 gates share names (issue 9, class 5).

Written for ddpfix's runtime tests (tests/test_runtime_ddp008.py): the first
`if args.local_rank in [-1, 0]:` binds the log directory, the logger and the checkpoint handler
(and saves the arguments); later gates on the same predicate only read them. With the
2020-era --local_rank / NCCL setup.
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


class CheckpointHandler(object):
    """ Keeps the last checkpoint of the run """

    def __init__(self, directory):
        self.directory = directory
        if not os.path.exists(directory):
            os.makedirs(directory)

    def keep(self, model, step):
        model_to_save = model.module if hasattr(model, 'module') else model
        torch.save(model_to_save.state_dict(), os.path.join(self.directory, "checkpoint-last.bin"))
        with open(os.path.join(self.directory, "step.txt"), "w") as handle:
            handle.write(str(step))


def synthetic_dataset(n_examples=32):
    generator = torch.Generator().manual_seed(1234)
    features = torch.randn(n_examples, 8, generator=generator)
    labels = features.sum(dim=1, keepdim=True)
    return TensorDataset(features, labels)


def train(args, train_dataset, model):
    """ Train the model """
    if args.local_rank in [-1, 0]:
        log_dir = os.path.join(args.output_dir, "logs")
        if not os.path.exists(log_dir):
            os.makedirs(log_dir)
        tb_logger = open(os.path.join(log_dir, "train.log"), "w")
        checkpoint_handler = CheckpointHandler(os.path.join(args.output_dir, "checkpoints"))
        with open(os.path.join(log_dir, "args.json"), "w") as handle:
            json.dump(dict((k, str(v)) for k, v in vars(args).items()), handle)

    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)

    global_step = 0
    model.train()
    for epoch in range(args.num_train_epochs):
        for step, batch in enumerate(train_dataloader):
            inputs, labels = batch
            loss = ((model(inputs.to(args.device)) - labels.to(args.device)) ** 2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if args.local_rank in [-1, 0] and global_step % args.logging_steps == 0:  # log
                tb_logger.write("step %d loss %.6f\n" % (global_step, loss.item()))

    if args.local_rank in [-1, 0]:  # close
        checkpoint_handler.keep(model, global_step)
        tb_logger.close()
    return global_step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True,
                        help="The output directory where the model checkpoints will be written.")
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.05, type=float)
    parser.add_argument("--num_train_epochs", default=2, type=int)
    parser.add_argument("--logging_steps", default=2, type=int)
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
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.local_rank],
                                                          output_device=args.local_rank)

    train(args, synthetic_dataset(), model)

    model_to_save = model.module if hasattr(model, 'module') else model
    if args.local_rank in [-1, 0]:
        torch.save(model_to_save.state_dict(), os.path.join(args.output_dir, "pytorch_model.bin"))
    dump_state(args.output_dir, model_to_save)


if __name__ == "__main__":
    main()
