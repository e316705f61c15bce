# An accelerate script (written for ddpfix's runtime proof of DDP022): accelerate prepares the
# dev loader with the rest, so each process scores its own half of the dev set, and the
# patience that ends training moves on each process's own number.
import argparse
import json
import os

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset


def evaluate(model, loader):
    model.eval()
    correct = 0
    total = 0
    for x, y in loader:
        with torch.no_grad():
            hits = model(x).argmax(-1) == y
        correct += hits.sum().item()
        total += len(hits)
    return correct / total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    accelerator = Accelerator()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    train_loader = DataLoader(data, batch_size=8, shuffle=True)
    dev_loader = DataLoader(data, batch_size=8)
    model, optimizer, train_loader, dev_loader = accelerator.prepare(
        model, optimizer, train_loader, dev_loader
    )
    best, bad = -1.0, 0
    for epoch in range(args.epochs):
        model.train()
        for x, y in train_loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
        acc = evaluate(model, dev_loader)
        if acc > best:
            best, bad = acc, 0
        else:
            bad += 1
            if bad > args.patience:
                break
    print("stopped at epoch", epoch, flush=True)
    dump_state(args.output_dir, accelerator.unwrap_model(model))


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
