"""A DataParallel-only seq2seq trainer (written for ddpfix, in the style of UniXcoder's
code-generation run.py): everything happens in main(); no process group and no rank anywhere. After
each epoch it evaluates dev loss, decodes a random sample of the dev set, writes dev.output/dev.gold,
scores them by reading the files back, and saves checkpoint-best-score; a patience counter then
guards an early stop that never fires (``patience == -1`` on a counter that starts at 0 and only
grows or is reset to 0: dead code). --do_test reloads the best checkpoint and writes
predictions.txt."""
import argparse
import json
import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset

VOCAB, LENGTH = 12, 5


def dump_state(output_dir, model, batch_sizes, decoded, epochs):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest(),
                   "batch_sizes": sorted(set(batch_sizes)), "decoded": decoded,
                   "epochs": epochs}, handle)


class Example(object):
    def __init__(self, idx, source, target):
        self.idx = idx
        self.source = source
        self.target = target


def read_examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    sources = torch.randint(3, VOCAB, (n, LENGTH), generator=g)
    return [Example(i, s, s.flip(0)) for i, s in enumerate(sources)]


def to_dataset(examples):
    return TensorDataset(torch.stack([e.source for e in examples]),
                         torch.stack([e.target for e in examples]))


class Seq2Seq(nn.Module):
    """Reverse the source: the loss with a target, a greedy decode (beam of one) without."""

    def __init__(self):
        super(Seq2Seq, self).__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.encoder = nn.Linear(16 * LENGTH, 32)
        self.lm_head = nn.Linear(32 + 16, LENGTH * VOCAB)

    def forward(self, source_ids, target_ids=None):
        hidden = torch.tanh(self.encoder(self.embed(source_ids).flatten(1)))
        if target_ids is not None:
            logits = self.lm_head(torch.cat([hidden, self.embed(target_ids[:, 0])], 1))
            logits = logits.view(-1, LENGTH, VOCAB)
            loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), target_ids.reshape(-1))
            num = torch.tensor(target_ids.numel(), device=loss.device)
            return loss, loss * num, num
        preds = []
        for i in range(source_ids.size(0)):  # one example at a time, as a beam search does
            first = self.embed(source_ids[i, -1:])
            logits = self.lm_head(torch.cat([hidden[i:i + 1], first], 1)).view(LENGTH, VOCAB)
            preds.append(logits.argmax(-1).unsqueeze(0))
        return torch.stack(preds)


def _bleu(ref_file, hyp_file):
    """Stands in for bleu.py's _bleu: it reads both files back (smoothed: never 0, so the first
    evaluation always saves a best checkpoint)."""
    with open(ref_file) as r, open(hyp_file) as h:
        refs, hyps = r.read().splitlines(), h.read().splitlines()
    tokens = [(a.split(), b.split()) for a, b in zip(refs, hyps)]
    matched = sum(x == y for a, b in tokens for x, y in zip(a, b))
    return 1.0 + 100.0 * matched / max(sum(len(a) for a, _ in tokens), 1)


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
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--num_train_epochs", default=3, type=int)
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

    seen, decoded, epochs = [], 0, 0
    if args.do_train:
        train_data = to_dataset(read_examples(32, 0))
        train_sampler = RandomSampler(train_data)
        train_dataloader = DataLoader(train_data, sampler=train_sampler,
                                      batch_size=args.train_batch_size // args.gradient_accumulation_steps)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

        model.train()
        patience, best_score, losses, dev_dataset = 0, 0, [], {}
        for epoch in range(args.num_train_epochs):
            epochs += 1
            for idx, batch in enumerate(train_dataloader):
                batch = tuple(t.to(device) for t in batch)
                source_ids, target_ids = batch
                seen.append(source_ids.size(0))
                loss, _, _ = model(source_ids=source_ids, target_ids=target_ids)
                if args.n_gpu > 1:
                    loss = loss.mean()  # mean() to average on multi-gpu.
                if args.gradient_accumulation_steps > 1:
                    loss = loss / args.gradient_accumulation_steps
                losses.append(loss.item())
                loss.backward()
                if len(losses) % args.gradient_accumulation_steps == 0:
                    # Update parameters
                    optimizer.step()
                    optimizer.zero_grad()
            if args.do_eval:
                # Eval model with dev dataset
                if 'dev_loss' in dev_dataset:
                    eval_examples, eval_data = dev_dataset['dev_loss']
                else:
                    eval_examples = read_examples(12, 1)
                    eval_data = to_dataset(eval_examples)
                    dev_dataset['dev_loss'] = eval_examples, eval_data
                eval_sampler = SequentialSampler(eval_data)
                eval_dataloader = DataLoader(eval_data, sampler=eval_sampler, batch_size=args.eval_batch_size)

                # Start Evaling model
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
                eval_loss = eval_loss / tokens_num
                print("epoch %d eval_ppl %s" % (epoch, round(np.exp(eval_loss), 5)))

                # Calculate bleu
                if 'dev_bleu' in dev_dataset:
                    eval_examples, eval_data = dev_dataset['dev_bleu']
                else:
                    eval_examples = read_examples(12, 1)
                    eval_examples = random.sample(eval_examples, min(8, len(eval_examples)))
                    eval_data = to_dataset(eval_examples)
                    dev_dataset['dev_bleu'] = eval_examples, eval_data
                eval_sampler = SequentialSampler(eval_data)
                eval_dataloader = DataLoader(eval_data, sampler=eval_sampler, batch_size=args.eval_batch_size)

                model.eval()
                p = []
                for batch in eval_dataloader:
                    batch = tuple(t.to(device) for t in batch)
                    source_ids = batch[0]
                    with torch.no_grad():
                        preds = model(source_ids)
                        for pred in preds:
                            p.append(decode(pred[0].cpu().numpy()))
                            decoded += 1
                model.train()
                predictions = []
                EM = []
                with open(args.output_dir + "/dev.output", 'w') as f, open(args.output_dir + "/dev.gold", 'w') as f1:
                    for ref, gold in zip(p, eval_examples):
                        predictions.append(ref)
                        f.write(ref + '\n')
                        f1.write(decode(gold.target) + '\n')
                        EM.append(ref.split() == decode(gold.target).split())

                dev_bleu = _bleu(args.output_dir + "/dev.gold", args.output_dir + "/dev.output")
                dev_score = dev_bleu + round(np.mean(EM) * 100, 2)
                print("bleu-4 %s score %s" % (dev_bleu, dev_score))
                if dev_score > best_score:
                    best_score = dev_score
                    # Save best checkpoint for best bleu
                    output_dir = os.path.join(args.output_dir, 'checkpoint-best-score')
                    if not os.path.exists(output_dir):
                        os.makedirs(output_dir)
                    model_to_save = model.module if hasattr(model, 'module') else model  # Only save the model it-self
                    output_model_file = os.path.join(output_dir, "pytorch_model.bin")
                    torch.save(model_to_save.state_dict(), output_model_file)
                    patience = 0
                else:
                    patience += 1
                    if patience == -1:
                        break
        dump_state(args.output_dir, model.module if hasattr(model, 'module') else model, seen, decoded, epochs)

    if args.do_test:
        checkpoint_prefix = 'checkpoint-best-score/pytorch_model.bin'
        output_dir = os.path.join(args.output_dir, checkpoint_prefix)
        model_to_load = model.module if hasattr(model, 'module') else model
        model_to_load.load_state_dict(torch.load(output_dir))

        eval_examples = read_examples(10, 2)
        eval_data = to_dataset(eval_examples)
        eval_sampler = SequentialSampler(eval_data)
        eval_dataloader = DataLoader(eval_data, sampler=eval_sampler, batch_size=args.eval_batch_size)

        model.eval()
        p = []
        for batch in eval_dataloader:
            batch = tuple(t.to(device) for t in batch)
            source_ids = batch[0]
            with torch.no_grad():
                preds = model(source_ids)
                for pred in preds:
                    p.append(decode(pred[0].cpu().numpy()))
        model.train()
        with open(args.output_dir + "/predictions.txt", 'w') as f:
            for ref, gold in zip(p, eval_examples):
                f.write(str(gold.idx) + '\t' + ref + '\n')


if __name__ == "__main__":
    main()
