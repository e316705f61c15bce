"""A DataParallel-only code-completion trainer (written for ddpfix, in the style of CodeBERT's
2023 LongCoder run.py): main() sets up the device, wraps the model in DataParallel and calls
train(); after each epoch train() calls evaluate(), a helper that decodes the dev set, writes
dev.output/dev.gold itself and returns the scores, and saves checkpoint-best-acc when the
accuracy improves; --do_test calls the same helper for test.output/test.gold. No process group
anywhere. The model holds a buffer, so a DDP-wrapped forward broadcasts it: a collective."""
import argparse
import json
import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

VOCAB, LENGTH = 12, 6
SCORED = []  # the dev/test examples this process decoded


def dump_state(output_dir, model, batch_sizes):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest(),
                   "batch_sizes": sorted(set(batch_sizes)), "scored": SCORED}, handle)


class TextDataset(Dataset):
    def __init__(self, split):
        sizes = {"train": 32, "validation": 8, "test": 8}
        g = torch.Generator().manual_seed(len(split))
        self.examples = [{"ids": torch.randint(1, VOCAB, (LENGTH,), generator=g), "key": i}
                         for i in range(sizes[split])]
        for e in self.examples:
            e["gt"] = str(int(e["ids"][-1]))

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]["ids"], torch.tensor(self.examples[i]["key"])


class Seq2Seq(nn.Module):
    """Predict the last token from the ones before it."""

    def __init__(self):
        super(Seq2Seq, self).__init__()
        self.register_buffer("position_ids", torch.arange(LENGTH - 1))
        self.embed = nn.Embedding(VOCAB, 8)
        self.position = nn.Embedding(LENGTH, 8)
        self.head = nn.Linear(8 * (LENGTH - 1), VOCAB)

    def forward(self, source_ids, train=False):
        hidden = self.embed(source_ids[:, :-1]) + self.position(self.position_ids)
        logits = self.head(torch.tanh(hidden.flatten(1)))
        if train:
            return nn.functional.cross_entropy(logits, source_ids[:, -1])
        return logits.argmax(-1)


def train(args, model):
    train_dataset = TextDataset("train")
    train_dataloader = DataLoader(train_dataset, sampler=RandomSampler(train_dataset), batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    losses, best_acc, seen = [], 0.0, []
    for idx in range(args.num_train_epochs):
        losses = []
        for step, batch in enumerate(train_dataloader):
            source_ids, _ = [x.to(args.device) for x in batch]
            seen.append(source_ids.size(0))
            loss = model(source_ids, True)
            if args.n_gpu > 1:
                loss = loss.mean()
            losses.append(loss.item())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        #evaluate
        results = evaluate(args, model, "validation", output_file_prefix="dev")
        for key, value in results.items():
            print("  %s = %s" % (key, round(value, 4)))

        #save best model
        if results['eval_acc'] > best_acc:
            best_acc = results['eval_acc']
            print("  Best acc:%s" % best_acc)
            checkpoint_prefix = 'checkpoint-best-acc'
            output_dir = os.path.join(args.output_dir, '{}'.format(checkpoint_prefix))
            if not os.path.exists(output_dir):
                os.makedirs(output_dir)
            model_to_save = model.module if hasattr(model, 'module') else model
            output_dir = os.path.join(output_dir, '{}'.format('model.bin'))
            torch.save(model_to_save.state_dict(), output_dir)
    return seen


def evaluate(args, model, split, output_file_prefix="test"):
    test_dataset = TextDataset(split)
    test_sampler = SequentialSampler(test_dataset)
    test_dataloader = DataLoader(test_dataset, sampler=test_sampler, batch_size=args.eval_batch_size)
    model.eval()
    preds, keys = [], []
    for batch in test_dataloader:
        source_ids, key = [x.to(args.device) for x in batch]
        with torch.no_grad():
            outs = model(source_ids)
        for pred, k in zip(outs, key):
            preds.append(str(int(pred)))
            keys.append(int(k))
            SCORED.append("%s:%d" % (split, int(k)))
    gts = [test_dataset.examples[i]['gt'] for i in range(len(test_dataset.examples))]
    with open(os.path.join(args.output_dir, "{}.output".format(output_file_prefix)), 'w') as f, open(os.path.join(args.output_dir, "{}.gold".format(output_file_prefix)), 'w') as f1:
        for k, ref, gold in zip(keys, preds, gts):
            f.write("%d\t%s\n" % (k, ref))
            f1.write("%d\t%s\n" % (k, gold))
    model.train()
    return {"eval_acc": round(np.mean([p == g for p, g in zip(preds, gts)]) * 100, 2)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_test", action="store_true")
    parser.add_argument("--train_batch_size", default=8, type=int)
    parser.add_argument("--eval_batch_size", default=4, type=int)
    parser.add_argument("--num_train_epochs", default=2, type=int)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    # Setup CUDA, GPU
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.n_gpu = torch.cuda.device_count()
    args.device = device

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if os.path.exists(args.output_dir) is False:
        os.makedirs(args.output_dir)

    model = Seq2Seq()
    model.to(device)
    if args.n_gpu > 1:
        # multi-gpu training
        model = torch.nn.DataParallel(model)

    seen = []
    if args.do_train:
        seen = train(args, model)

    if args.do_test:
        results = evaluate(args, model, "test", output_file_prefix="test")
        for key, value in results.items():
            print("  %s = %s" % (key, round(value, 4)))
    dump_state(args.output_dir, model.module if hasattr(model, 'module') else model, seen)


if __name__ == "__main__":
    main()
