"""A half-distributed generation trainer (written for ddpfix, in the style of 2021 seq2seq code):
it creates a process group and shards its data with a DistributedSampler, but only ever wraps the
model in DataParallel. Every rank trains its own model."""
import argparse
import json
import os

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


def set_dist(args):
    if args.local_rank == -1 or args.no_cuda:
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')
        args.n_gpu = 1
    args.device = device


class Seq2Seq(nn.Module):
    def __init__(self, vocab=16, width=8):
        super(Seq2Seq, self).__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, vocab)
        self.config = {"vocab": vocab}

    def forward(self, source_ids, labels):
        logits = self.head(self.embed(source_ids))
        return nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1))

    def generate(self, source_ids):
        return self.head(self.embed(source_ids)).argmax(-1)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    source = torch.randint(0, 16, (n, 4), generator=g)
    return TensorDataset(source, (source + 1) % 16)


def eval_bleu_epoch(args, data, model):
    loader = DataLoader(data, sampler=SequentialSampler(data), batch_size=4)
    model.eval()
    preds = []
    with torch.no_grad():
        for source, _ in loader:
            preds.extend(model.generate(source.to(args.device)).tolist())
    model.train()
    return preds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--num_train_epochs", type=int, default=2)
    args = parser.parse_args()

    set_dist(args)
    torch.manual_seed(1234)
    model = Seq2Seq()
    model.to(args.device)
    if args.n_gpu > 1:
        # for DataParallel
        model = torch.nn.DataParallel(model)
    train_data, dev_data = make_data(48, 0), make_data(12, 1)
    train_sampler = RandomSampler(train_data) if args.local_rank == -1 else DistributedSampler(train_data)
    train_dataloader = DataLoader(train_data, sampler=train_sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for epoch in range(args.num_train_epochs):
        for source, target in train_dataloader:
            loss = model(source_ids=source.to(args.device), labels=target.to(args.device))
            if args.n_gpu > 1:
                loss = loss.mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    preds = eval_bleu_epoch(args, dev_data, model)
    if args.local_rank in [-1, 0]:
        with open(os.path.join(args.output_dir, "test.output"), "w") as f:
            for i, pred in enumerate(preds):
                f.write("%d\t%s\n" % (i, " ".join(map(str, pred))))
        model_to_save = model.module if hasattr(model, 'module') else model
        torch.save(model_to_save.state_dict(), os.path.join(args.output_dir, "pytorch_model.bin"))
    dump_state(args.output_dir, model.module if hasattr(model, 'module') else model)


if __name__ == "__main__":
    main()
