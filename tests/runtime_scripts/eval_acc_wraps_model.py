"""A language-model trainer (written for ddpfix's runtime proof of issue 10): train() wraps its own
copy of the model in DDP; after training, `if args.do_eval:` (on every rank) calls eval_acc(), which
wraps the model it is handed in DDP again, scores a DistributedSampler shard of the test blocks
and writes predictions.txt, checked line by line against the reference file in block order."""
import argparse
import json
import logging
import os

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

logger = logging.getLogger(__name__)

N_TEST = 23
VOCAB = 6


def make_blocks(n, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (n, 5), generator=g)
    return TensorDataset(torch.arange(n), tokens)


def write_reference(args, dataset):
    with open(os.path.join(args.output_dir, "test_gold.txt"), "w") as f:
        for idx, tokens in zip(*dataset.tensors):
            f.write("%d %d\n" % (idx, tokens[-1]))


def train(args, model, dataset):
    sampler = RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
    loader = DataLoader(dataset, sampler=sampler, batch_size=4, drop_last=True)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        for _, tokens in loader:
            logits = model(tokens[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()


def eval_acc(args, model, file_type="test"):
    """Next-token accuracy on the last token of every block; one prediction line per block."""
    dataset = make_blocks(N_TEST, 7)
    args.eval_batch_size = 4 * max(1, args.n_gpu)
    eval_sampler = SequentialSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
    eval_dataloader = DataLoader(dataset, sampler=eval_sampler, batch_size=args.eval_batch_size)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)

    # wrap for the distributed run, as in training
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)

    model.eval()
    total, correct = 0, 0
    all_pred = []
    for idx, tokens in eval_dataloader:
        with torch.no_grad():
            pred = model(tokens[:, :-1])[:, -1].argmax(-1)
        for i, p, t in zip(idx.tolist(), pred.tolist(), tokens[:, -1].tolist()):
            all_pred.append((i, p, t))
            total += 1
            correct += int(p == t)
    saved = os.path.join(args.output_dir, "%s_predictions.txt" % file_type)
    post_process(args, all_pred, saved)
    return total, correct


def post_process(args, preds, saved_file):
    """Write the predictions, checking each line against the reference, in block order."""
    with open(os.path.join(args.output_dir, "test_gold.txt")) as f:
        gold = f.readlines()
    wf = open(saved_file, "w")
    for line, (i, p, t) in enumerate(preds):
        assert gold[line].split() == [str(i), str(t)], "predictions out of order"
        wf.write("%d %d\n" % (i, p))
    wf.close()


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.head = nn.Linear(8, VOCAB)

    def forward(self, tokens):
        return self.head(torch.tanh(self.embed(tokens)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true")
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    args.n_gpu = 0 if args.local_rank == -1 else 1
    logging.basicConfig(level=logging.INFO if args.local_rank in [-1, 0] else logging.WARN)
    torch.manual_seed(3)
    model = TinyLM()
    if args.local_rank in [-1, 0]:  # the reference file, as the data set provides it
        write_reference(args, make_blocks(N_TEST, 7))
    if args.local_rank != -1:
        torch.distributed.barrier()

    if args.do_train:
        train(args, model, make_blocks(64, 0))

    # Only works on single GPU
    if args.do_eval:
        test_total, test_cr = eval_acc(args, model, "test")
        logger.info("Test total: %d, accuracy: %s", test_total, test_cr / test_total)
    dump_state(args.output_dir, model)


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
