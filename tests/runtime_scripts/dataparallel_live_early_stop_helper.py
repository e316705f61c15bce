"""A DataParallel-only trainer (written for ddpfix) whose training loop sits in a train() helper
that receives the model as ``net``: after each epoch the dev evaluation first resets the running
loss (``tr_loss``/``nb_tr_steps``, which the training loop reads and logs), then writes
dev_predictions.txt, scores it by reading it back, and stops after --patience epochs without
improvement. The score never improves after the first epoch, so the stop fires after epoch 1 +
patience."""
import argparse
import json
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset


def dump_state(output_dir, model, epochs, steps):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest(),
                   "epochs": epochs, "steps": steps}, handle)


def trace(output_dir, what):
    with open(os.path.join(output_dir, "state-trace-%d.txt" % os.getpid()), "a") as handle:
        handle.write(what + "\n")


def dataset(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x.sum(1) > 0).long())


def accuracy_from_file(path, labels):
    with open(path) as handle:
        predictions = [int(line) for line in handle.read().split()]
    assert len(predictions) == len(labels), "dev_predictions.txt read back incomplete"
    return 0.5  # a plateau: never better than the first evaluation


def train(args, net, train_set, dev_set):
    loader = DataLoader(train_set, sampler=RandomSampler(train_set), batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    best, bad, epochs, steps = 0.0, 0, 0, 0
    tr_loss, nb_tr_steps = 0.0, 0
    for epoch in range(args.num_train_epochs):
        epochs += 1
        for inputs, labels in loader:
            loss = nn.functional.cross_entropy(net(inputs.to(args.device)), labels.to(args.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            tr_loss += loss.item()
            nb_tr_steps += 1
            steps += 1
        print("epoch %d train loss %.4f" % (epoch, tr_loss / max(nb_tr_steps, 1)))
        if args.do_eval:
            tr_loss = 0.0
            nb_tr_steps = 0
            net.eval()
            with torch.no_grad():
                predictions = net(dev_set.tensors[0].to(args.device)).argmax(-1).tolist()
            net.train()
            trace(args.output_dir, "evaluation %d" % epoch)
            with open(os.path.join(args.output_dir, "dev_predictions.txt"), "w") as handle:
                handle.write("\n".join(str(p) for p in predictions))
            score = accuracy_from_file(os.path.join(args.output_dir, "dev_predictions.txt"), dev_set.tensors[1])
            if score > best:
                best = score
                bad = 0
            else:
                bad += 1
                if bad >= args.patience:
                    break
    return epochs, steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--train_batch_size", default=8, type=int)
    parser.add_argument("--num_train_epochs", default=8, type=int)
    parser.add_argument("--patience", default=2, type=int)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.n_gpu = torch.cuda.device_count()
    args.device = device

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2)).to(device)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    epochs, steps = train(args, model, dataset(32, 0), dataset(12, 1))
    dump_state(args.output_dir, model.module if hasattr(model, "module") else model, epochs, steps)


if __name__ == "__main__":
    main()
