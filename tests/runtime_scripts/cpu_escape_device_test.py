"""A trainer (written for ddpfix) whose device test sends CPU machines to the single-process
branch (``or not torch.cuda.is_available()``), although its rank still drives the sampler and DDP."""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
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


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x.sum(dim=1) > 0).long())


def evaluate(model, dataset, device):
    time.sleep(2)  # a real dev set takes a while to decode
    loader = DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=8)
    correct = 0
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x.to(device)).argmax(dim=1).cpu() == y).sum())
    model.train()
    return correct / len(dataset)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--num_train_epochs", type=int, default=1)
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()

    if args.local_rank == -1 or args.no_cuda or not torch.cuda.is_available():
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')

    torch.manual_seed(7)
    model = nn.Linear(8, 2).to(device)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    model_to_save = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_data, dev_data = make_data(32, 0), make_data(16, 1)
    sampler = RandomSampler(train_data) if args.local_rank == -1 else DistributedSampler(train_data)
    loader = DataLoader(train_data, sampler=sampler, batch_size=4)
    best_acc = -1.0
    for epoch in range(args.num_train_epochs):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        if args.do_eval:
            acc = evaluate(model_to_save, dev_data, device)
            if acc > best_acc:
                best_acc = acc
                torch.save(model_to_save.state_dict(), os.path.join(args.output_dir, "model_best.pt"))
    model_to_save.load_state_dict(torch.load(os.path.join(args.output_dir, "model_best.pt")))
    dump_state(args.output_dir, model_to_save)


if __name__ == "__main__":
    main()
