# A legacy-style BigCloneBench script for DDP017's runtime proof (issue 12): evaluate() sweeps an
# F1 threshold over logits collected with `.cpu().numpy()` appends and `np.concatenate`, test()
# writes predictions.txt by zipping the examples with the predictions, both build the template's
# `SequentialSampler if local_rank == -1 else DistributedSampler` choice, and every evaluation runs
# behind a rank-0 gate (the in-training one only without a launcher, as upstream), except an
# optional score before training on every rank, through the DDP wrapper. The model has a buffer,
# like RoBERTa's position_ids: DDP's forward broadcasts it from rank 0.
import argparse
import json
import logging
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)

FEATURES = 16


class InputFeatures(object):
    def __init__(self, left, right, label, url1, url2):
        self.left = left
        self.right = right
        self.label = label
        self.url1 = url1
        self.url2 = url2


class PairDataset(Dataset):
    def __init__(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        left = torch.randn(n, FEATURES, generator=generator)
        noise = torch.randn(n, FEATURES, generator=generator)
        same = torch.rand(n, generator=generator) > 0.5
        right = torch.where(same[:, None], left + 0.3 * noise, noise)
        self.examples = [
            InputFeatures(left[i], right[i], int(same[i]), "a/%d.java" % i, "b/%d.java" % (i * 7))
            for i in range(n)
        ]

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        example = self.examples[i]
        return example.left, example.right, torch.tensor(example.label)


class Model(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(FEATURES, hidden), nn.Tanh(),
                                     nn.Linear(hidden, hidden), nn.Tanh(),
                                     nn.Linear(hidden, hidden))
        self.classifier = nn.Linear(2 * hidden, 2)
        self.register_buffer("position_ids", torch.arange(FEATURES))

    def forward(self, left, right, labels=None):
        a = self.encoder(left[:, self.position_ids])
        b = self.encoder(right[:, self.position_ids])
        logits = self.classifier(torch.cat([a * b, (a - b).abs()], -1))
        prob = torch.softmax(logits, -1)
        if labels is None:
            return prob
        return nn.functional.cross_entropy(logits, labels), prob


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(args, train_dataset, model):
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    args.save_steps = len(train_dataloader)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.local_rank],
                                                          output_device=args.local_rank)
    if args.evaluate_before_training:  # the score before training, on every rank
        results = evaluate(args, model)
        logger.info("  epoch 0 f1 = %s", results["eval_f1"])
    global_step = 0
    best_f1 = -1
    for idx in range(args.epoch):
        for step, batch in enumerate(train_dataloader):
            model.train()
            loss, _ = model(batch[0].to(args.device), batch[1].to(args.device), batch[2].to(args.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if args.local_rank in [-1, 0] and args.save_steps > 0 and global_step % args.save_steps == 0:

                if args.local_rank == -1 and args.evaluate_during_training:  # Only evaluate when single GPU otherwise metrics may not average well
                    results = evaluate(args, model)

                if results['eval_f1'] > best_f1:
                    best_f1 = results['eval_f1']
                    output_dir = os.path.join(args.output_dir, 'checkpoint-best-f1')
                    if not os.path.exists(output_dir):
                        os.makedirs(output_dir)
                    model_to_save = model.module if hasattr(model, 'module') else model
                    torch.save(model_to_save.state_dict(), os.path.join(output_dir, 'model.bin'))
                    logger.info("Saving model checkpoint to %s", output_dir)
    return model


def f1_at(probs, labels, threshold):
    preds = probs > threshold
    tp = float(np.sum(preds & (labels == 1)))
    fp = float(np.sum(preds & (labels == 0)))
    fn = float(np.sum(~preds & (labels == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def evaluate(args, model):
    eval_dataset = PairDataset(args.eval_size, seed=1)
    # Note that DistributedSampler samples randomly
    eval_sampler = SequentialSampler(eval_dataset) if args.local_rank == -1 else DistributedSampler(eval_dataset)
    eval_dataloader = DataLoader(eval_dataset, sampler=eval_sampler, batch_size=args.eval_batch_size)
    eval_loss = 0.0
    nb_eval_steps = 0
    model.eval()
    logits = []
    y_trues = []
    for batch in eval_dataloader:
        labels = batch[2].to(args.device)
        with torch.no_grad():
            lm_loss, logit = model(batch[0].to(args.device), batch[1].to(args.device), labels)
            eval_loss += lm_loss.mean().item()
            logits.append(logit.cpu().numpy())
            y_trues.append(labels.cpu().numpy())
        nb_eval_steps += 1
    logits = np.concatenate(logits, 0)
    y_trues = np.concatenate(y_trues, 0)
    best_f1, best_threshold = max((f1_at(logits[:, 1], y_trues, t / 100), t / 100) for t in range(1, 100))
    return {"eval_f1": best_f1, "eval_threshold": best_threshold, "eval_examples": int(len(y_trues))}


def test(args, model, best_threshold=0.5):
    eval_dataset = PairDataset(args.test_size, seed=2)
    eval_sampler = SequentialSampler(eval_dataset) if args.local_rank == -1 else DistributedSampler(eval_dataset)
    eval_dataloader = DataLoader(eval_dataset, sampler=eval_sampler, batch_size=args.eval_batch_size)
    model.eval()
    logits = []
    for batch in eval_dataloader:
        with torch.no_grad():
            logits.append(model(batch[0].to(args.device), batch[1].to(args.device)).cpu().numpy())
    logits = np.concatenate(logits, 0)
    y_preds = logits[:, 1] > best_threshold
    with open(os.path.join(args.output_dir, "predictions.txt"), 'w') as f:
        for example, pred in zip(eval_dataset.examples, y_preds):
            f.write(example.url1 + '\t' + example.url2 + '\t' + ('1' if pred else '0') + '\n')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--do_test", action="store_true")
    parser.add_argument("--evaluate_during_training", action="store_true")
    parser.add_argument("--evaluate_before_training", action="store_true")
    parser.add_argument("--train_size", default=24, type=int)
    parser.add_argument("--eval_size", default=7, type=int)
    parser.add_argument("--test_size", default=7, type=int)
    parser.add_argument("--hidden", default=32, type=int)
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--eval_batch_size", default=2, type=int)
    parser.add_argument("--learning_rate", default=0.1, type=float)
    parser.add_argument("--epoch", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()

    # Setup CUDA, GPU & distributed training
    if args.local_rank == -1 or args.no_cuda:
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:  # Initializes the distributed backend which will take care of sychronizing nodes/GPUs
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend="nccl")
        args.n_gpu = 1
    args.device = device

    logging.basicConfig(level=logging.INFO if args.local_rank in [-1, 0] else logging.WARN)
    set_seed(args.seed)

    model = Model(args.hidden).to(args.device)
    if args.do_train:
        train_dataset = PairDataset(args.train_size, seed=0)
        train(args, train_dataset, model)

    checkpoint = os.path.join(args.output_dir, 'checkpoint-best-f1/model.bin')
    started = time.time()
    if args.do_eval and args.local_rank in [-1, 0]:
        model.load_state_dict(torch.load(checkpoint))
        model.to(args.device)
        result = evaluate(args, model)
        with open(os.path.join(args.output_dir, "eval_results.json"), "w") as f:
            json.dump(result, f, sort_keys=True)
    if args.do_test and args.local_rank in [-1, 0]:
        model.load_state_dict(torch.load(checkpoint))
        model.to(args.device)
        test(args, model)
    dump_state(args.output_dir, model, time.time() - started)


def dump_state(output_dir, model, eval_seconds):
    """Leave this process's end state for the test: its rank, a hash of its parameters and the
    wall time of its evaluation phase (for bench/eval_speed.py)."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest(),
                   "eval_seconds": eval_seconds}, handle)


if __name__ == "__main__":
    main()
