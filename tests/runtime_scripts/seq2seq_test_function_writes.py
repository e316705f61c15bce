"""A seq2seq-template trainer (written for ddpfix's runtime proof of issue 9, class 11): after
training, `if args.do_test:` calls test(), which decodes the test set and writes test_0.output and
test_0.gold itself; the block around the call writes nothing."""
from __future__ import absolute_import
import argparse
import json
import logging
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)

N_TEST = 37
FEATURES = 8


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorDataset(torch.arange(n), x, y)


def test(args, model, device):
    """Decode the test set, write the predictions and the references."""
    test_data = make_data(N_TEST, 1)
    test_dataloader = DataLoader(test_data, sampler=SequentialSampler(test_data), batch_size=args.eval_batch_size)
    model.eval()
    p, gold = [], []
    for batch in test_dataloader:
        idx, x, y = tuple(t.to(device) for t in batch)
        with torch.no_grad():
            preds = model(x).argmax(dim=-1)
        for i, pred, ref in zip(idx.tolist(), preds.tolist(), y.tolist()):
            p.append((i, pred))
            gold.append((i, ref))
    model.train()
    with open(os.path.join(args.output_dir, "test_0.output"), 'w') as f, \
            open(os.path.join(args.output_dir, "test_0.gold"), 'w') as f1:
        for (i, pred), (_, ref) in zip(p, gold):
            f.write(str(i) + '\t' + str(pred) + '\n')
            f1.write(str(i) + '\t' + str(ref) + '\n')
    acc = sum(pred == ref for (_, pred), (_, ref) in zip(p, gold)) / len(p)
    logger.info("  test acc = %s", acc)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True)
    parser.add_argument("--do_train", action='store_true')
    parser.add_argument("--do_test", action='store_true')
    parser.add_argument("--no_cuda", action='store_true')
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--eval_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.05, type=float)
    parser.add_argument("--train_steps", default=24, type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()

    # Setup CUDA, GPU & distributed training
    if args.local_rank == -1 or args.no_cuda:
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')
        args.n_gpu = 1
    logging.basicConfig(level=logging.INFO if args.local_rank in [-1, 0] else logging.WARN)

    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 2))
    model.to(device)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    loss_fct = nn.CrossEntropyLoss()

    if args.do_train:
        train_data = make_data(64, 0)
        if args.local_rank == -1:
            train_sampler = RandomSampler(train_data)
        else:
            train_sampler = DistributedSampler(train_data)
        train_dataloader = DataLoader(train_data, sampler=train_sampler, batch_size=args.train_batch_size)
        model.train()
        batches = iter(train_dataloader)
        for step in range(args.train_steps):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(train_dataloader)
                batch = next(batches)
            _, x, y = tuple(t.to(device) for t in batch)
            loss = loss_fct(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    if args.do_test:
        test(args, model, device)

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
