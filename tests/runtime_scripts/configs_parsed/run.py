# The training script of a CodeT5-style project (class 9 of issue 9): it never declares
# --local_rank; configs.add_args parses it. Each rank trains its own copy of the model on its
# DistributedSampler shard (no DDP wrap), as CodeT5's run_gen.py does.
import argparse
import json
import logging
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from configs import add_args, set_dist, set_seed

logger = logging.getLogger(__name__)

N_EXAMPLES = 40
FEATURES = 5


def load_dataset(args):
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(N_EXAMPLES, FEATURES, generator=generator)
    y = (x.sum(dim=1) > 0).long()
    return TensorDataset(x, y)


def main():
    parser = argparse.ArgumentParser()
    args = add_args(parser)
    logging.basicConfig(format='%(asctime)s - %(levelname)s - %(name)s -   %(message)s',
                        level=logging.INFO)
    logger.info(args)
    set_dist(args)
    set_seed(args)

    train_data = load_dataset(args)
    if args.local_rank == -1:
        train_sampler = RandomSampler(train_data)
    else:
        train_sampler = DistributedSampler(train_data)
    train_dataloader = DataLoader(train_data, sampler=train_sampler, batch_size=args.train_batch_size)

    model = nn.Linear(FEATURES, args.num_labels)
    model.to(args.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    for epoch in range(args.num_train_epochs):
        for x, y in train_dataloader:
            loss = nn.functional.cross_entropy(model(x.to(args.device)), y.to(args.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        logger.info("epoch %d done, rank %s", epoch, args.local_rank)
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
