# coding=utf-8
# A legacy-style classifier in the shape of CodeXGLUE's NL-code-search-WebQuery run_classifier.py,
# written for ddpfix's runtime proof of DDP018 (tests/test_runtime_ddp018.py). Its TextDataset
# caches the features it builds next to the data; the training branch kept only the first half of
# the template's barrier pair around it: ranks other than 0 wait for rank 0's cache in a barrier
# rank 0 never joins (it goes on to wrap its model in DDP). Under `python -m
# torch.distributed.launch`, or once the script reads LOCAL_RANK, that hangs; under torchrun /
# accelerate launch as it is, every process keeps --local_rank -1, builds and writes the cache
# itself and trains alone. Each process records whether it built its features or loaded them.
from __future__ import absolute_import, division, print_function

import argparse
import json
import logging
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)

FEATURES = 8


def set_seed(args):
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)


class TextDataset(Dataset):
    def __init__(self, args, file_path, n_examples=32):
        cache_file = os.path.join(file_path, 'cached_train_features')
        if os.path.exists(cache_file):
            self.features, self.labels = torch.load(cache_file)
            source = "loaded"
        else:
            time.sleep(1.0)  # the slow part the cache saves: tokenising the corpus (synthetic here)
            generator = torch.Generator().manual_seed(1234)
            self.features = torch.randn(n_examples, FEATURES, generator=generator)
            self.labels = (self.features[:, 0] > 0).long()
            torch.save((self.features, self.labels), cache_file)
            source = "built"
        with open(os.path.join(args.output_dir, "features-%d.json" % os.getpid()), "w") as handle:
            json.dump({"rank": os.environ.get("RANK"), "source": source}, handle)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.features[i], self.labels[i]


def train(args, train_dataset, model):
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.local_rank],
                                                          output_device=args.local_rank)
    loss_fct = nn.CrossEntropyLoss()
    model.train()
    for idx in range(args.num_train_epochs):
        for features, labels in train_dataloader:
            loss = loss_fct(model(features.to(args.device)), labels.to(args.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True)
    parser.add_argument("--data_dir", default=None, type=str,
                        help="Where the features are cached (default: the output directory).")
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.1, type=float)
    parser.add_argument("--num_train_epochs", default=2, type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action='store_true')
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()
    args.data_dir = args.data_dir or args.output_dir

    if args.local_rank == -1 or args.no_cuda:
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')
        args.n_gpu = 1
    args.device = device
    set_seed(args)

    if args.local_rank not in [-1, 0]:
        torch.distributed.barrier()  # Make sure only the first process in distributed training will download model & vocab
    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 2))
    if args.local_rank == 0:
        torch.distributed.barrier()  # End of barrier to make sure only the first process in distributed training download model & vocab
    model.to(args.device)

    if args.local_rank not in [-1, 0]:
        torch.distributed.barrier()  # Barrier to make sure only the first process in distributed training process the dataset, and the others will use the cache
    train_dataset = TextDataset(args, args.data_dir)
    model = train(args, train_dataset, model)

    model_to_save = model.module if hasattr(model, 'module') else model
    dump_state(args.output_dir, model_to_save)


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
