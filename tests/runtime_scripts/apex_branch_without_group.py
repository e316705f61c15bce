"""A line-completion trainer (written for ddpfix) of the UniXcoder kind: under ``--local_rank`` it
wraps the model in apex's DDP, but nothing ever sets up a process group for that branch."""
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


class Completer(nn.Module):
    """Predicts the next token id; the unused head stands for the pooler such models skip."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.out = nn.Linear(8, 16)
        self.unused_head = nn.Linear(8, 1)

    def forward(self, ids, labels=None):
        logits = self.out(self.embed(ids).mean(dim=1))
        if labels is None:
            return logits.argmax(dim=-1)
        return nn.functional.cross_entropy(logits, labels)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 16, (n, 5), generator=g)
    return TensorDataset(ids, ids[:, -1].clone())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--do_test", action="store_true")
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--train_batch_size", type=int, default=4)
    parser.add_argument("--num_train_epochs", type=int, default=2)
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
    args.n_gpu = torch.cuda.device_count()
    print("rank %s, device %s, %s GPUs" % (args.local_rank, device, args.n_gpu))
    args.device = device

    torch.manual_seed(7)
    model = Completer()
    model.to(device)
    if args.local_rank != -1:
        try:
            from apex.parallel import DistributedDataParallel as DDP
        except ImportError:
            raise ImportError("Please install apex to use distributed training.")
        model = DDP(model)
    elif args.n_gpu > 1:
        model = torch.nn.DataParallel(model)

    train_data, dev_data = make_data(48, 0), make_data(12, 1)
    if args.do_train:
        if args.local_rank == -1:
            train_sampler = RandomSampler(train_data)
        else:
            train_sampler = DistributedSampler(train_data)
        loader = DataLoader(train_data, sampler=train_sampler, batch_size=args.train_batch_size)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        best_acc = -1.0
        for epoch in range(args.num_train_epochs):
            model.train()
            for ids, labels in loader:
                loss = model(ids.to(device), labels.to(device))
                if args.n_gpu > 1:
                    loss = loss.mean()
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            if args.do_eval:
                time.sleep(1)  # a real dev set takes a while to decode
                model.eval()
                correct = 0
                dev_loader = DataLoader(dev_data, sampler=SequentialSampler(dev_data), batch_size=4)
                for ids, labels in dev_loader:
                    with torch.no_grad():
                        correct += int((model(ids.to(device)).cpu() == labels).sum())
                model.train()
                acc = correct / len(dev_data)
                if acc >= best_acc:
                    best_acc = acc
                    output_dir = os.path.join(args.output_dir, "checkpoint-best-acc")
                    if not os.path.exists(output_dir):
                        os.makedirs(output_dir)
                    model_to_save = model.module if hasattr(model, "module") else model
                    torch.save(model_to_save.state_dict(), os.path.join(output_dir, "model.bin"))
    if args.do_test:
        model.eval()
        predictions = []
        for ids, _ in DataLoader(dev_data, sampler=SequentialSampler(dev_data), batch_size=4):
            with torch.no_grad():
                predictions.extend(model(ids.to(device)).tolist())
        with open(os.path.join(args.output_dir, "predictions.txt"), "w") as f:
            for p in predictions:
                f.write("%d\n" % p)
    dump_state(args.output_dir, model.module if hasattr(model, "module") else model)


if __name__ == "__main__":
    main()
