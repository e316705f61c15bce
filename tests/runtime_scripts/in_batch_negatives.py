"""A DataParallel-only code-search trainer (written for ddpfix, in the style of GraphCodeBERT's
and UniXcoder's code search): each query is scored against every code of its batch, the other
codes are its negatives. --train_batch_size is the global batch DataParallel splits over GPUs.
Deterministic on purpose (no dropout, fixed seed), so runs can be compared parameter by parameter."""
import argparse
import json
import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.nn import CrossEntropyLoss
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset

VOCAB = 32


def dump_state(output_dir, model, batch_sizes):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    values = {name: tensor.detach().cpu().reshape(-1).tolist() for name, tensor in model.state_dict().items()}
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest(),
                   "batch_sizes": sorted(set(batch_sizes)), "values": values}, handle)


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Model(nn.Module):
    """One encoder for both sides, as in the code search models: mean of token embeddings."""

    def __init__(self):
        super(Model, self).__init__()
        self.embeddings = nn.Embedding(VOCAB, 16)
        self.dense = nn.Linear(16, 16)

    def forward(self, code_inputs=None, nl_inputs=None):
        inputs = code_inputs if code_inputs is not None else nl_inputs
        return torch.tanh(self.dense(self.embeddings(inputs).mean(dim=1)))


def make_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    code = torch.randint(0, VOCAB, (n, 6), generator=g)
    nl = (code[:, :4] + 1) % VOCAB  # the query says a little about its code
    return TensorDataset(code, nl)


def evaluate(args, model, dataset):
    loader = DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=args.eval_batch_size)
    model.eval()
    code_vecs, nl_vecs = [], []
    with torch.no_grad():
        for code_inputs, nl_inputs in loader:
            code_vecs.append(model(code_inputs=code_inputs.to(args.device)).cpu())
            nl_vecs.append(model(nl_inputs=nl_inputs.to(args.device)).cpu())
    model.train()
    scores = torch.cat(nl_vecs) @ torch.cat(code_vecs).t()
    ranks = (scores > scores.diag().unsqueeze(1)).sum(dim=1) + 1
    return {"eval_mrr": float((1.0 / ranks.float()).mean())}


def train(args, train_dataset, dev_dataset, model):
    train_sampler = RandomSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    model.train()
    best_mrr = 0.0
    seen = []
    for idx in range(args.epochs):
        for step, batch in enumerate(train_dataloader):
            code_inputs = batch[0].to(args.device)
            nl_inputs = batch[1].to(args.device)
            seen.append(code_inputs.size(0))
            code_vec = model(code_inputs=code_inputs)
            nl_vec = model(nl_inputs=nl_inputs)

            scores = torch.einsum("ab,cb->ac", nl_vec, code_vec)
            loss_fct = CrossEntropyLoss()
            loss = loss_fct(scores * 5, torch.arange(code_inputs.size(0), device=scores.device))

            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        results = evaluate(args, model, dev_dataset)
        if results["eval_mrr"] > best_mrr:
            best_mrr = results["eval_mrr"]
            output_dir = os.path.join(args.output_dir, "checkpoint-best-mrr")
            if not os.path.exists(output_dir):
                os.makedirs(output_dir)
            model_to_save = model.module if hasattr(model, "module") else model
            torch.save(model_to_save.state_dict(), os.path.join(output_dir, "model.bin"))
    return seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--train_batch_size", type=int, default=8)
    parser.add_argument("--eval_batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.n_gpu = torch.cuda.device_count()
    args.device = device
    set_seed(args.seed)
    model = Model().to(args.device)
    seen = []
    if args.do_train:
        seen = train(args, make_pairs(8, 0), make_pairs(12, 1), model)
    dump_state(args.output_dir, model, seen)  # what training left in this process
    if args.do_eval:
        checkpoint = os.path.join(args.output_dir, "checkpoint-best-mrr", "model.bin")
        model.load_state_dict(torch.load(checkpoint))
        result = evaluate(args, model, make_pairs(12, 2))
        with open(os.path.join(args.output_dir, "eval_results.txt"), "w") as f:
            f.write("eval_mrr = %.6f\n" % result["eval_mrr"])


if __name__ == "__main__":
    main()
