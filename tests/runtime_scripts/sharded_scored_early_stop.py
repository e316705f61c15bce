"""A half-distributed generation trainer (written for ddpfix, in the style of 2021 seq2seq code):
``--local_rank`` from the legacy launcher, a process group, the training data sharded with a
DistributedSampler, the model only in DataParallel. After each epoch its dev evaluation computes
the dev perplexity through the model, then decodes the dev set, writes ``test_e<epoch>.output``
and ``.gold``, reads them back for a score, saves the best checkpoint, and stops when neither the
perplexity nor the score improved for more than --patience epochs (two ``break``s: one in the
middle of the evaluation, one at its end). The dev targets are not what the model learns, so the
perplexity only grows after the first epoch, and the score never improves: the early stop
fires in the middle of the third evaluation, before its decoding. --do_test reloads the best
checkpoint and writes test_best-ppl.output."""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def dump_state(output_dir, model, epochs):
    """Leave this process's end state for the test: its rank, a hash of its parameters, and
    how many epochs it started."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest(), "epochs": epochs}, handle)


def trace(output_dir, what):
    """One line per event in this process's own trace file (what its evaluation did)."""
    with open(os.path.join(output_dir, "state-trace-%d.txt" % os.getpid()), "a") as handle:
        handle.write(what + "\n")


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

    def forward(self, source_ids, labels):
        logits = self.head(self.embed(source_ids))
        return nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1))

    def generate(self, source_ids):
        return self.head(self.embed(source_ids)).argmax(-1)


def make_data(n, seed, shift):
    g = torch.Generator().manual_seed(seed)
    source = torch.randint(0, 16, (n, 4), generator=g)
    return TensorDataset(source, (source + shift) % 16)


def eval_ppl_epoch(args, eval_data, model):
    loader = DataLoader(eval_data, sampler=SequentialSampler(eval_data), batch_size=4)
    model.eval()
    eval_loss, batch_num = 0, 0
    for source, target in loader:
        with torch.no_grad():
            loss = model(source_ids=source.to(args.device), labels=target.to(args.device))
        eval_loss += loss.item()
        batch_num += 1
    return round(float(np.exp(eval_loss / batch_num)), 5)


def read_score(gold_fn, output_fn):
    """Stands in for a BLEU script: both files read back, a score that never improves (a model
    on a plateau), so the patience runs out."""
    with open(gold_fn) as f1, open(output_fn) as f:
        golds, preds = f1.read().splitlines(), f.read().splitlines()
    assert len(golds) == len(preds) == 12, "a file read back half-written"
    return 0.0


def eval_bleu_epoch(args, eval_data, model, criteria):
    loader = DataLoader(eval_data, sampler=SequentialSampler(eval_data), batch_size=4)
    model.eval()
    preds = []
    with torch.no_grad():
        for source, _ in loader:
            preds.extend(model.generate(source.to(args.device)).tolist())
    trace(args.output_dir, "decoded %s" % criteria)
    output_fn = os.path.join(args.output_dir, "test_{}.output".format(criteria))
    gold_fn = os.path.join(args.output_dir, "test_{}.gold".format(criteria))
    with open(output_fn, 'w') as f, open(gold_fn, 'w') as f1:
        for i, (pred, (_, target)) in enumerate(zip(preds, eval_data)):
            f.write("%d\t%s\n" % (i, " ".join(map(str, pred))))
            f1.write("%d\t%s\n" % (i, " ".join(map(str, target.tolist()))))
    return {'bleu': round(read_score(gold_fn, output_fn), 2)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--do_eval_bleu", action="store_true")  # the tests' variant gates on it
    parser.add_argument("--do_test", action="store_true")
    parser.add_argument("--num_train_epochs", type=int, default=8)
    parser.add_argument("--patience", type=int, default=1)
    args = parser.parse_args()

    set_dist(args)
    torch.manual_seed(1234)
    model = Seq2Seq()
    model.to(args.device)
    if args.n_gpu > 1:
        # for DataParallel
        model = torch.nn.DataParallel(model)
    fa = open(os.path.join(args.output_dir, 'summary.log'), 'a+')

    epochs = 0
    if args.do_train:
        train_data, dev_data = make_data(48, 0, 1), make_data(12, 1, 2)
        train_sampler = RandomSampler(train_data) if args.local_rank == -1 else DistributedSampler(train_data)
        train_dataloader = DataLoader(train_data, sampler=train_sampler, batch_size=4)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        best_bleu, best_ppl = 0, 1e6
        not_loss_dec_cnt, not_bleu_inc_cnt = 0, 0
        for cur_epoch in range(args.num_train_epochs):
            epochs += 1
            model.train()
            for source, target in train_dataloader:
                loss = model(source_ids=source.to(args.device), labels=target.to(args.device))
                if args.n_gpu > 1:
                    loss = loss.mean()
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()

            if args.do_eval:
                trace(args.output_dir, "evaluation %d" % cur_epoch)
                eval_ppl = eval_ppl_epoch(args, dev_data, model)
                if eval_ppl < best_ppl:
                    not_loss_dec_cnt = 0
                    best_ppl = eval_ppl
                    fa.write("[%d] Best ppl changed into %.4f\n" % (cur_epoch, eval_ppl))
                    output_dir = os.path.join(args.output_dir, 'checkpoint-best-ppl')
                    if not os.path.exists(output_dir):
                        os.makedirs(output_dir)
                    model_to_save = model.module if hasattr(model, 'module') else model
                    torch.save(model_to_save.state_dict(), os.path.join(output_dir, "pytorch_model.bin"))
                else:
                    not_loss_dec_cnt += 1
                    if all([x > args.patience for x in [not_bleu_inc_cnt, not_loss_dec_cnt]]):
                        fa.write("[%d] Early stop on ppl\n" % cur_epoch)
                        break

                result = eval_bleu_epoch(args, dev_data, model, 'e%d' % cur_epoch)
                dev_bleu = result['bleu']
                if dev_bleu > best_bleu:
                    not_bleu_inc_cnt = 0
                    best_bleu = dev_bleu
                    fa.write("[%d] Best bleu changed into %.2f\n" % (cur_epoch, best_bleu))
                    output_dir = os.path.join(args.output_dir, 'checkpoint-best-bleu')
                    if not os.path.exists(output_dir):
                        os.makedirs(output_dir)
                    model_to_save = model.module if hasattr(model, 'module') else model
                    torch.save(model_to_save.state_dict(), os.path.join(output_dir, "pytorch_model.bin"))
                else:
                    not_bleu_inc_cnt += 1
                    if all([x > args.patience for x in [not_bleu_inc_cnt, not_loss_dec_cnt]]):
                        fa.write("[%d] Early stop on bleu\n" % cur_epoch)
                        break
        dump_state(args.output_dir, model.module if hasattr(model, 'module') else model, epochs)

    if args.do_test:
        file = os.path.join(args.output_dir, 'checkpoint-best-ppl/pytorch_model.bin')
        model.load_state_dict(torch.load(file))
        result = eval_bleu_epoch(args, make_data(12, 2, 1), model, 'best-ppl')
        fa.write("[test] bleu-4: %.2f\n" % result['bleu'])
    fa.close()


if __name__ == "__main__":
    main()
