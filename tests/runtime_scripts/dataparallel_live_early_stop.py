"""A DataParallel-only seq2seq trainer (written for ddpfix, in the style of UniXcoder's
code-summarization run.py): everything happens in main(); no process group and no rank anywhere.
After each epoch it evaluates the dev loss, decodes the dev set, writes dev.output/dev.gold,
scores them by reading the files back, saves checkpoint-best-bleu when the score improves, and
stops after two epochs without improvement (``if patience == 2: break``, a live early stop). The
score here never improves after the first epoch (it is read from the files, then held flat), so
the early stop fires after the third epoch. --do_test reloads the best checkpoint and writes
test.output."""
import argparse
import json
import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset

VOCAB, LENGTH = 12, 5


def dump_state(output_dir, model, batch_sizes, epochs):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest(),
                   "batch_sizes": sorted(set(batch_sizes)), "epochs": epochs}, handle)


def trace(output_dir, what):
    """One line per event in this process's own trace file (what the evaluation did)."""
    with open(os.path.join(output_dir, "state-trace-%d.txt" % os.getpid()), "a") as handle:
        handle.write(what + "\n")


class Example(object):
    def __init__(self, idx, source, target):
        self.idx = idx
        self.source = source
        self.target = target


def read_examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    sources = torch.randint(3, VOCAB, (n, LENGTH), generator=g)
    return [Example(i, s, s.flip(0)) for i, s in enumerate(sources)]


def to_dataset(examples, with_target=True):
    sources = torch.stack([e.source for e in examples])
    if not with_target:
        return TensorDataset(sources)
    return TensorDataset(sources, torch.stack([e.target for e in examples]))


class Seq2Seq(nn.Module):
    """Reverse the source: the loss with a target, a greedy decode without."""

    def __init__(self):
        super(Seq2Seq, self).__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.encoder = nn.Linear(16 * LENGTH, 32)
        self.lm_head = nn.Linear(32, LENGTH * VOCAB)

    def forward(self, source_ids, target_ids=None):
        hidden = torch.tanh(self.encoder(self.embed(source_ids).flatten(1)))
        logits = self.lm_head(hidden).view(-1, LENGTH, VOCAB)
        if target_ids is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), target_ids.reshape(-1))
            num = torch.tensor(target_ids.numel(), device=loss.device)
            return loss, loss * num, num
        return logits.argmax(-1)


def compute_maps(predictions, gold_file):
    """Stands in for bleu.py's computeMaps: the predictions from memory, the references read
    back from the gold file."""
    with open(gold_file) as handle:
        gold = dict(line.rstrip("\n").split("\t", 1) for line in handle)
    hyps = dict(p.split("\t", 1) for p in predictions)
    return gold, hyps


def flat_bleu(gold_map, prediction_map):
    """A score that never improves after the first evaluation: what a model stuck on a plateau
    shows, so the early stop fires. It still needs every reference read back."""
    assert set(gold_map) == set(prediction_map), "dev.gold read back incomplete"
    return 10.0


def decode(t):
    return " ".join(str(int(x)) for x in t)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--do_test", action="store_true")
    parser.add_argument("--train_batch_size", default=8, type=int)
    parser.add_argument("--eval_batch_size", default=4, type=int)
    parser.add_argument("--num_train_epochs", default=6, type=int)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    # set device
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.n_gpu = torch.cuda.device_count()
    args.device = device

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    # make dir if output_dir not exist
    if os.path.exists(args.output_dir) is False:
        os.makedirs(args.output_dir)

    model = Seq2Seq()
    model.to(args.device)
    if args.n_gpu > 1:
        # multi-gpu training
        model = torch.nn.DataParallel(model)

    seen, epochs = [], 0
    if args.do_train:
        train_data = to_dataset(read_examples(32, 0))
        train_sampler = RandomSampler(train_data)
        train_dataloader = DataLoader(train_data, sampler=train_sampler, batch_size=args.train_batch_size)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

        model.train()
        patience, best_bleu, losses, dev_dataset = 0, 0, [], {}
        for epoch in range(args.num_train_epochs):
            epochs += 1
            for idx, batch in enumerate(train_dataloader):
                batch = tuple(t.to(device) for t in batch)
                source_ids, target_ids = batch
                seen.append(source_ids.size(0))
                loss, _, _ = model(source_ids=source_ids, target_ids=target_ids)
                if args.n_gpu > 1:
                    loss = loss.mean()  # mean() to average on multi-gpu.
                losses.append(loss.item())
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            if args.do_eval:
                # dev loss
                if 'dev_loss' in dev_dataset:
                    eval_examples, eval_data = dev_dataset['dev_loss']
                else:
                    eval_examples = read_examples(12, 1)
                    eval_data = to_dataset(eval_examples)
                    dev_dataset['dev_loss'] = eval_examples, eval_data
                eval_dataloader = DataLoader(eval_data, sampler=SequentialSampler(eval_data), batch_size=args.eval_batch_size)
                model.eval()
                eval_loss, tokens_num = 0, 0
                for batch in eval_dataloader:
                    batch = tuple(t.to(device) for t in batch)
                    source_ids, target_ids = batch
                    with torch.no_grad():
                        _, loss, num = model(source_ids=source_ids, target_ids=target_ids)
                    eval_loss += loss.sum().item()
                    tokens_num += num.sum().item()
                model.train()
                trace(args.output_dir, "evaluation %d" % epoch)
                print("epoch %d eval_ppl %s" % (epoch, round(np.exp(eval_loss / tokens_num), 5)))

                # dev bleu, from the files written
                if 'dev_bleu' in dev_dataset:
                    eval_examples, eval_data = dev_dataset['dev_bleu']
                else:
                    eval_examples = read_examples(12, 1)
                    eval_examples = random.sample(eval_examples, min(8, len(eval_examples)))
                    eval_data = to_dataset(eval_examples, with_target=False)
                    dev_dataset['dev_bleu'] = eval_examples, eval_data
                eval_dataloader = DataLoader(eval_data, sampler=SequentialSampler(eval_data), batch_size=args.eval_batch_size)
                model.eval()
                p = []
                for batch in eval_dataloader:
                    source_ids = batch[0].to(device)
                    with torch.no_grad():
                        for pred in model(source_ids):
                            p.append(decode(pred.cpu().numpy()))
                            trace(args.output_dir, "decoded")
                model.train()
                predictions = []
                with open(args.output_dir + "/dev.output", 'w') as f, open(args.output_dir + "/dev.gold", 'w') as f1:
                    for ref, gold in zip(p, eval_examples):
                        predictions.append(str(gold.idx) + '\t' + ref)
                        f.write(str(gold.idx) + '\t' + ref + '\n')
                        f1.write(str(gold.idx) + '\t' + decode(gold.target) + '\n')
                (goldMap, predictionMap) = compute_maps(predictions, os.path.join(args.output_dir, "dev.gold"))
                dev_bleu = round(flat_bleu(goldMap, predictionMap), 2)
                print("epoch %d bleu-4 %s" % (epoch, dev_bleu))
                if dev_bleu > best_bleu:
                    best_bleu = dev_bleu
                    # Save best checkpoint for best bleu
                    output_dir = os.path.join(args.output_dir, 'checkpoint-best-bleu')
                    if not os.path.exists(output_dir):
                        os.makedirs(output_dir)
                    model_to_save = model.module if hasattr(model, 'module') else model  # Only save the model it-self
                    output_model_file = os.path.join(output_dir, "pytorch_model.bin")
                    torch.save(model_to_save.state_dict(), output_model_file)
                    patience = 0
                else:
                    patience += 1
                    if patience == 2:
                        break
        dump_state(args.output_dir, model.module if hasattr(model, 'module') else model, seen, epochs)

    if args.do_test:
        checkpoint_prefix = 'checkpoint-best-bleu/pytorch_model.bin'
        output_dir = os.path.join(args.output_dir, checkpoint_prefix)
        model_to_load = model.module if hasattr(model, 'module') else model
        model_to_load.load_state_dict(torch.load(output_dir))

        eval_examples = read_examples(10, 2)
        eval_data = to_dataset(eval_examples, with_target=False)
        eval_dataloader = DataLoader(eval_data, sampler=SequentialSampler(eval_data), batch_size=args.eval_batch_size)
        model.eval()
        p = []
        for batch in eval_dataloader:
            source_ids = batch[0].to(device)
            with torch.no_grad():
                for pred in model(source_ids):
                    p.append(decode(pred.cpu().numpy()))
        model.train()
        with open(args.output_dir + "/test.output", 'w') as f:
            for ref, gold in zip(p, eval_examples):
                f.write(str(gold.idx) + '\t' + ref + '\n')


if __name__ == "__main__":
    main()
