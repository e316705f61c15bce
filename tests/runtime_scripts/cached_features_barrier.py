# coding=utf-8
"""A legacy-style trainer with the HF template's feature cache (issue 9, class 15).

Written for ddpfix's runtime tests (tests/test_runtime_ddp008.py): load_and_cache_examples()
builds the features once and caches them with torch.save between the two halves of a barrier
pair, so that the other processes load the cache instead of building it again. The cache
directory is local to each node unless --data_dir points to a shared one (on one machine, a
directory per node stands for the node's local disk). With the 2020-era --local_rank / NCCL
setup. Each process records whether it built its features or loaded them from the cache.
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import logging
import os
import time

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def convert_examples_to_features(n_examples=64):
    """ The slow part the cache saves: tokenising the corpus (synthetic here) """
    time.sleep(1.0)
    generator = torch.Generator().manual_seed(1234)
    features = torch.randn(n_examples, 8, generator=generator)
    labels = features.sum(dim=1, keepdim=True)
    return [features, labels]


def load_and_cache_examples(args, evaluate=False):
    if args.local_rank not in [-1, 0] and not evaluate:
        torch.distributed.barrier()  # Make sure only the first process in distributed training process the dataset, and the others will use the cache

    cached_features_file = os.path.join(args.data_dir, 'cached_{}_features'.format('dev' if evaluate else 'train'))
    if os.path.exists(cached_features_file) and not args.overwrite_cache:
        logger.info("Loading features from cached file %s", cached_features_file)
        features = torch.load(cached_features_file)
        source = "loaded"
    else:
        logger.info("Creating features from dataset file at %s", args.data_dir)
        features = convert_examples_to_features()
        source = "built"
        if args.local_rank in [-1, 0]:
            logger.info("Saving features into cached file %s", cached_features_file)
            torch.save(features, cached_features_file)

    if args.local_rank == 0 and not evaluate:
        torch.distributed.barrier()  # Make sure only the first process in distributed training process the dataset, and the others will use the cache

    with open(os.path.join(args.output_dir, "features-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "data_dir": args.data_dir, "source": source}, handle)
    return TensorDataset(*features)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True,
                        help="The output directory where the model checkpoints will be written.")
    parser.add_argument("--data_dir", default=None, type=str,
                        help="Where the features are cached (default: this node's own directory).")
    parser.add_argument("--overwrite_cache", action='store_true')
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.05, type=float)
    parser.add_argument("--num_train_epochs", default=1, type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action='store_true', help="Avoid using CUDA when available")
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()
    if args.data_dir is None:  # this node's local disk
        args.data_dir = os.path.join(args.output_dir, "node-%s" % os.environ.get("GROUP_RANK", "0"))
    if not os.path.exists(args.data_dir):
        os.makedirs(args.data_dir, exist_ok=True)

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

    train_dataset = load_and_cache_examples(args, evaluate=False)
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    model.train()
    for epoch in range(args.num_train_epochs):
        for step, batch in enumerate(train_dataloader):
            inputs, labels = batch
            loss = ((model(inputs.to(args.device)) - labels.to(args.device)) ** 2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    model_to_save = model.module if hasattr(model, 'module') else model
    if args.local_rank in [-1, 0]:
        torch.save(model_to_save.state_dict(), os.path.join(args.output_dir, "pytorch_model.bin"))
    dump_state(args.output_dir, model_to_save)


if __name__ == "__main__":
    main()
