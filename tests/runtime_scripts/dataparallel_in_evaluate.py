# coding=utf-8
# A legacy-style defect classifier in the shape of a CodeXGLUE Defect-detection fork (written for
# ddpfix's runtime proof of issue 9, F2). train() shards its data with a DistributedSampler but
# never wraps the model; the only DataParallel block is in evaluate(), which rank 0 alone runs
# during training. The rank is live under torchrun / accelerate launch (the argument default
# reads LOCAL_RANK). A DDP wrap after evaluate()'s DataParallel block would be a collective rank
# 0 reaches alone (hang); the training model would still be unsynchronised.
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


def set_seed(args):
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)


def build_dataset(n_examples, seed):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n_examples, FEATURES, generator=generator)
    labels = (features[:, 0] > 0).long()
    return TensorDataset(features, labels)


def train(args, train_dataset, model):
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    loss_fct = nn.CrossEntropyLoss()
    global_step = 0
    for _ in range(args.num_train_epochs):
        for features, labels in train_dataloader:
            loss = loss_fct(model(features.to(args.device)), labels.to(args.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if args.local_rank in [-1, 0] and global_step % 2 == 0:
                result = evaluate(args, model, eval_when_training=True)
                print("step %d accuracy %.3f" % (global_step, result["acc"]), flush=True)
    return model


def evaluate(args, model, eval_when_training=False):
    eval_dataset = build_dataset(16, seed=1)
    eval_dataloader = DataLoader(eval_dataset, sampler=SequentialSampler(eval_dataset), batch_size=4)
    if args.n_gpu > 1 and eval_when_training is False:
        model = torch.nn.DataParallel(model)
    model.eval()
    correct = 0
    with torch.no_grad():
        for features, labels in eval_dataloader:
            logits = model(features.to(args.device))
            correct += (logits.argmax(-1) == labels.to(args.device)).sum().item()
    model.train()
    return {"acc": correct / len(eval_dataset)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True)
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.1, type=float)
    parser.add_argument("--num_train_epochs", default=2, type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", -1)),
                        help="For distributed training: local_rank")
    args = parser.parse_args()

    if args.local_rank == -1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')
        args.n_gpu = 1
    args.device = device
    set_seed(args)

    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 2)).to(args.device)
    model = train(args, build_dataset(32, seed=0), model)
    if args.local_rank in [-1, 0]:
        print("final accuracy %.3f" % evaluate(args, model)["acc"], flush=True)
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
