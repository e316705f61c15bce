"""A DataParallel-only trainer (written for ddpfix, in the style of 2021 GraphCodeBERT code): no
process group anywhere; --train_batch_size is the global batch DataParallel splits over GPUs."""
import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset


def dump_state(output_dir, model, batch_sizes):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest(),
                   "batch_sizes": sorted(set(batch_sizes))}, handle)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x.sum(dim=1) > 0).long())


def evaluate(args, model, dataset):
    loader = DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=args.eval_batch_size)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x.to(args.device)).argmax(dim=1).cpu() == y).sum())
    model.train()
    return {"eval_acc": correct / len(dataset)}


def train(args, train_dataset, dev_dataset, model):
    train_sampler = RandomSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    best_acc = 0.0
    seen = []
    for idx in range(args.epochs):
        for step, (x, y) in enumerate(train_dataloader):
            seen.append(len(x))
            loss = nn.functional.cross_entropy(model(x.to(args.device)), y.to(args.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        results = evaluate(args, model, dev_dataset)
        if results["eval_acc"] >= best_acc:
            best_acc = results["eval_acc"]
            output_dir = os.path.join(args.output_dir, "checkpoint-best-acc")
            if not os.path.exists(output_dir):
                os.makedirs(output_dir)
            model_to_save = model.module if hasattr(model, "module") else model
            torch.save(model_to_save.state_dict(), os.path.join(output_dir, "model.bin"))
    return seen


def test(args, model, dataset):
    preds = []
    model.eval()
    with torch.no_grad():
        for x, _ in DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=4):
            preds.extend(model(x.to(args.device)).argmax(dim=1).tolist())
    with open(os.path.join(args.output_dir, "predictions.txt"), "w") as f:
        for i, pred in enumerate(preds):
            f.write("%d\t%d\n" % (i, pred))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--train_batch_size", type=int, default=8)
    parser.add_argument("--eval_batch_size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_test", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.n_gpu = torch.cuda.device_count()
    args.device = device
    torch.manual_seed(11)
    model = nn.Linear(4, 2).to(args.device)
    seen = []
    if args.do_train:
        seen = train(args, make_data(64, 0), make_data(16, 1), model)
    dump_state(args.output_dir, model, seen)  # what training left in this process
    if args.do_test:
        checkpoint = os.path.join(args.output_dir, "checkpoint-best-acc", "model.bin")
        model.load_state_dict(torch.load(checkpoint))
        test(args, model, make_data(12, 2))


if __name__ == "__main__":
    main()
