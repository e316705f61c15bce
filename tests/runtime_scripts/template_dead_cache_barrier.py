# coding=utf-8
# A legacy-style trainer in the HF classification template's shape (written for ddpfix's runtime
# proof of issue 9, class 7). load_and_cache_examples() keeps the template's barrier pair but lost
# its `evaluate` parameter in a fork: `evaluate` there is the module's function evaluate(), always
# truthy, so `not evaluate` is False and both barriers are dead code. evaluate() builds the
# template's `SequentialSampler if local_rank == -1 else DistributedSampler` choice and writes
# predictions.txt, one line per example it scored. train() evaluates behind the template's
# `local_rank == -1 and args.evaluate_during_training` gate ("only evaluate when single GPU").
from __future__ import absolute_import, division, print_function

import argparse
import json
import logging
import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)

N_TEST = 37  # not divisible by the world size: a shard is visibly partial
FEATURES = 8


def set_seed(args):
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)


def convert_examples_to_features(n_examples, seed):
    """ Tokenising the corpus (synthetic here): example ids, features, labels """
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n_examples, FEATURES, generator=generator)
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).long()
    return torch.arange(n_examples), features, labels


def load_and_cache_examples(args, tokenizer, split):
    if args.local_rank not in [-1, 0] and not evaluate:
        torch.distributed.barrier()  # Make sure only the first process in distributed training process the dataset, and the others will use the cache

    logger.info("Creating features for %s", split)
    if split == "train":
        ids, features, labels = convert_examples_to_features(64, seed=0)
    else:
        ids, features, labels = convert_examples_to_features(N_TEST, seed=1)

    if args.local_rank == 0 and not evaluate:
        torch.distributed.barrier()  # Make sure only the first process in distributed training process the dataset, and the others will use the cache

    return TensorDataset(ids, features, labels)


def train(args, train_dataset, model):
    """ Train the model """
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)

    # Distributed training (should be after apex fp16 initialization)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.local_rank],
                                                          output_device=args.local_rank,
                                                          find_unused_parameters=True)

    global_step = 0
    tr_loss = 0.0
    loss_fct = nn.CrossEntropyLoss()
    for epoch in range(args.num_train_epochs):
        for step, batch in enumerate(train_dataloader):
            model.train()
            _, features, labels = tuple(t.to(args.device) for t in batch)
            loss = loss_fct(model(features), labels)
            loss.backward()
            tr_loss += loss.item()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1

            if args.local_rank in [-1, 0] and args.logging_steps > 0 and global_step % args.logging_steps == 0:
                # Log metrics
                if args.local_rank == -1 and args.evaluate_during_training:  # Only evaluate when single GPU otherwise metrics may not average well
                    results = evaluate(args, model)
                    for key, value in results.items():
                        logger.info("  %s = %s", key, value)
                logger.info("  step %d loss %.4f", global_step, tr_loss / global_step)

    return global_step, model


def evaluate(args, model):
    eval_dataset = load_and_cache_examples(args, None, "test")
    # Note that DistributedSampler samples randomly
    eval_sampler = SequentialSampler(eval_dataset) if args.local_rank == -1 else DistributedSampler(eval_dataset)
    eval_dataloader = DataLoader(eval_dataset, sampler=eval_sampler, batch_size=args.eval_batch_size)

    logger.info("***** Running evaluation *****")
    model.eval()
    scored, preds, labels = [], [], []
    for batch in eval_dataloader:
        idx, features, label = tuple(t.to(args.device) for t in batch)
        with torch.no_grad():
            logits = model(features)
        scored.extend(idx.tolist())
        preds.extend(logits.argmax(-1).tolist())
        labels.extend(label.tolist())

    with open(os.path.join(args.output_dir, "predictions.txt"), "w") as f:
        for idx, pred in zip(scored, preds):
            f.write("%d\t%d\n" % (idx, pred))
    return {"eval_acc": float(np.mean(np.array(preds) == np.array(labels)))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True,
                        help="The output directory where the model predictions and checkpoints will be written.")
    parser.add_argument("--evaluate_during_training", action='store_true',
                        help="Run evaluation during training at each logging step.")
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--eval_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.1, type=float)
    parser.add_argument("--num_train_epochs", default=2, type=int)
    parser.add_argument("--logging_steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action='store_true')
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

    logging.basicConfig(level=logging.INFO if args.local_rank in [-1, 0] else logging.WARN)
    set_seed(args)

    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 2))
    model.to(args.device)

    train_dataset = load_and_cache_examples(args, None, "train")
    global_step, model = train(args, train_dataset, model)

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
