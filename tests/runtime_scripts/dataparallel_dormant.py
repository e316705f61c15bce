# A legacy-style DataParallel-only script for DDP001's runtime proof (class 6 of issue 9): it
# kept the template's --local_rank, a barrier pair and a get_world_size() that only run with a
# rank, but never initialises a process group. Under a launcher it runs as independent copies,
# each training the whole model on the whole data; woken up by a LOCAL_RANK read, its
# distributed code would raise "Default process group has not been initialized".
import argparse
import json
import logging
import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)

N_EXAMPLES = 48
FEATURES = 6


def set_seed(args):
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.n_gpu > 0:
        torch.cuda.manual_seed_all(args.seed)


def load_dataset(args):
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(N_EXAMPLES, FEATURES, generator=generator)
    y = (x[:, 0] - x[:, 1] > 0).long()
    return TensorDataset(x, y)


def train(args, train_dataset, model):
    args.train_batch_size = args.per_gpu_train_batch_size * max(1, args.n_gpu)
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)

    logger.info("***** Running training *****")
    logger.info("  Num examples = %d", len(train_dataset))
    logger.info("  Total train batch size (w. parallel & distributed) = %d",
                args.train_batch_size * (torch.distributed.get_world_size() if args.local_rank != -1 else 1))
    global_step = 0
    model.train()
    for _ in range(args.num_train_epochs):
        for x, y in train_dataloader:
            x, y = x.to(args.device), y.to(args.device)
            loss = nn.functional.cross_entropy(model(x), y)
            if args.n_gpu > 1:
                loss = loss.mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
    return global_step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True,
                        help="The output directory where the model checkpoints will be written.")
    parser.add_argument("--per_gpu_train_batch_size", default=8, type=int,
                        help="Batch size per GPU/CPU for training.")
    parser.add_argument("--learning_rate", default=0.1, type=float)
    parser.add_argument("--num_train_epochs", default=2, type=int)
    parser.add_argument("--no_cuda", action='store_true',
                        help="Avoid using CUDA when available")
    parser.add_argument('--seed', type=int, default=42,
                        help="random seed for initialization")
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
    args.n_gpu = torch.cuda.device_count() if not args.no_cuda else 0
    args.device = device
    logging.basicConfig(format='%(asctime)s - %(levelname)s - %(name)s -   %(message)s',
                        level=logging.INFO if args.local_rank in [-1, 0] else logging.WARN)
    logger.warning("Process rank: %s, device: %s, n_gpu: %s, distributed training: %s",
                   args.local_rank, device, args.n_gpu, bool(args.local_rank != -1))
    set_seed(args)

    if args.local_rank not in [-1, 0]:
        torch.distributed.barrier()  # Make sure only the first process in distributed training builds the data
    train_dataset = load_dataset(args)
    if args.local_rank == 0:
        torch.distributed.barrier()

    model = nn.Linear(FEATURES, 2)
    model.to(args.device)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)

    global_step = train(args, train_dataset, model)
    logger.info(" global_step = %s", global_step)
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
