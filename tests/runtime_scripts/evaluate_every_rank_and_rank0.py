# A legacy-style training script for DDP005's runtime proof (class 12 of issue 9): evaluate()
# runs once before training on every rank (through the DDP wrapper) and during training behind a
# rank-0 gate; it builds the template's `SequentialSampler if local_rank == -1 else
# DistributedSampler` choice and writes predictions.txt by zipping the examples with the
# predictions, as the template's test() does.
import argparse
import json
import logging
import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)

N_EXAMPLES = 37  # not divisible by the world size: a shard is visibly partial
FEATURES = 8


class Example(object):
    def __init__(self, idx, features, label):
        self.idx = idx
        self.features = features
        self.label = label


class SyntheticDataset(Dataset):
    def __init__(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(n, FEATURES, generator=generator)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
        self.examples = [Example(i, x[i], int(y[i])) for i in range(n)]

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        example = self.examples[i]
        return torch.tensor(example.idx), example.features, torch.tensor(example.label)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(FEATURES, 2)
        # a buffer, like RoBERTa's position_ids: DDP's forward broadcasts it from rank 0
        self.register_buffer("scale", torch.ones(FEATURES))

    def forward(self, features, labels=None):
        logits = self.dense(features * self.scale)
        if labels is None:
            return logits
        return nn.functional.cross_entropy(logits, labels), logits


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(args, train_dataset, model):
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.local_rank],
                                                          output_device=args.local_rank)

    # the score before training, on every rank
    results = evaluate(args, model)
    logger.info("  epoch 0 acc = %s", results["eval_acc"])

    global_step = 0
    for epoch in range(args.epoch):
        for step, batch in enumerate(train_dataloader):
            _, features, labels = batch
            model.train()
            loss, _ = model(features.to(args.device), labels.to(args.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1

        if args.local_rank in [-1, 0] and args.evaluate_during_training:
            results = evaluate(args, model)
            logger.info("  epoch %d acc = %s", epoch + 1, results["eval_acc"])
    return model


def evaluate(args, model):
    eval_dataset = SyntheticDataset(N_EXAMPLES, seed=1)
    # Note that DistributedSampler samples randomly
    eval_sampler = SequentialSampler(eval_dataset) if args.local_rank == -1 else DistributedSampler(eval_dataset)
    eval_dataloader = DataLoader(eval_dataset, sampler=eval_sampler, batch_size=args.eval_batch_size)

    model.eval()
    scored, preds, labels = [], [], []
    for batch in eval_dataloader:
        idx, features, label = batch
        with torch.no_grad():
            logits = model(features.to(args.device))
        scored.extend(idx.tolist())
        preds.extend(logits.argmax(-1).tolist())
        labels.extend(label.tolist())
    # the template's test(): examples in file order, zipped with the predictions in loader order
    with open(os.path.join(args.output_dir, "predictions.txt"), "w") as f:
        for example, scored_idx, pred in zip(eval_dataset.examples, scored, preds):
            f.write("%d\t%d\t%d\n" % (example.idx, scored_idx, pred))
    return {"eval_acc": float(np.mean(np.array(preds) == np.array(labels)))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True)
    parser.add_argument("--evaluate_during_training", action="store_true")
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--eval_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.1, type=float)
    parser.add_argument("--epoch", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action="store_true")
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
        torch.distributed.init_process_group(backend="nccl")
        args.n_gpu = 1
    args.device = device

    logging.basicConfig(level=logging.INFO if args.local_rank in [-1, 0] else logging.WARN)
    set_seed(args.seed)

    model = Classifier().to(args.device)
    train_dataset = SyntheticDataset(64, seed=0)
    model = train(args, train_dataset, model)

    model_to_save = model.module if hasattr(model, "module") else model
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
