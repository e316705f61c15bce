"""A trainer (written for ddpfix) in CodeReviewer's shape: it sets up NCCL and the rank's GPU and
puts the model and every batch there with no CUDA check (``model.cuda()``, ``.to(local_rank)``,
``.cuda(local_rank)``), so on a CPU machine every rank dies at its first placement."""
import argparse
import json
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
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


class Example:
    def __init__(self, source_ids, y):
        self.source_ids = source_ids
        self.y = y


def make_examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 16, (n, 6), generator=g)
    return [Example(row.tolist(), int(row.sum() % 2)) for row in ids]


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids, labels=None):
        logits = self.head(self.embed(input_ids).mean(dim=1))
        if labels is None:
            return logits
        return nn.functional.cross_entropy(logits, labels)


def eval_acc(model, examples):
    local_rank = 0
    model.eval()
    correct = 0
    with torch.no_grad():
        source_ids = torch.tensor([ex.source_ids for ex in examples], dtype=torch.long).to(local_rank)
        pred = model(source_ids).argmax(dim=-1).cpu()
        correct = int((pred == torch.tensor([ex.y for ex in examples])).sum())
    model.train()
    return correct / len(examples)


def main(args):
    dist.init_process_group(backend="nccl")
    local_rank = dist.get_rank() % args.gpu_per_node
    args.local_rank = local_rank
    torch.cuda.set_device(local_rank)

    torch.manual_seed(7)
    model = Classifier()
    model = DDP(model.cuda(), device_ids=[local_rank], output_device=local_rank)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_examples = make_examples(32, 0)
    sampler = DistributedSampler(train_examples)
    loader = DataLoader(train_examples, sampler=sampler, batch_size=4, collate_fn=lambda b: b)
    for epoch in range(args.train_epochs):
        sampler.set_epoch(epoch)
        for examples in loader:
            source_ids = torch.tensor(
                [ex.source_ids for ex in examples], dtype=torch.long
            ).to(local_rank)
            ys = torch.tensor([ex.y for ex in examples], dtype=torch.long).cuda(args.local_rank)
            loss = model(source_ids, labels=ys)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    if dist.get_rank() == 0:
        acc = eval_acc(model.module, make_examples(16, 1))
        with open(os.path.join(args.output_dir, "eval.txt"), "w") as handle:
            handle.write("acc %.4f\n" % acc)
    dump_state(args.output_dir, model.module)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--train_epochs", type=int, default=2)
    parser.add_argument("--gpu_per_node", type=int, default=2)
    main(parser.parse_args())
