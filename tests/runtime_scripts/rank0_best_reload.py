# A legacy-style two-phase trainer (self-training in the shape of BERT-NER trainers), written
# for ddpfix's runtime proof of DDP013's rank-0 reload report (tests/test_runtime_rank0_reload.py).
# Rank 0 alone evaluates after each epoch of phase one and keeps a copy of the best weights; at
# the start of phase two the model is reset to that copy "if there is one", which only rank 0
# has. Every rank then trains on through DDP: the gradients are averaged, but the weights they
# are applied to differ, and nothing ever brings the replicas back together.
import argparse
import copy
import json
import os

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def evaluate(args, model):
    """The dev accuracy: rank 0's copy of the first epoch's weights is always the best one."""
    return 1.0 / (1 + args.evaluated)


def train(args, model):
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 4, generator=generator), torch.randn(32, 1, generator=generator))
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    best_acc, best_state_dict = 0.0, None
    args.evaluated = 0
    for epoch in range(args.epochs):
        # phase two starts from the best model of phase one
        if epoch == args.phase_two_epoch and best_state_dict is not None:
            print("rank %s reloads the best phase one model" % os.environ.get("RANK"), flush=True)
            model.load_state_dict(best_state_dict)
        for x, y in loader:
            loss = ((model(x.to(args.device)) - y.to(args.device)) ** 2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        if args.local_rank in [-1, 0] and epoch < args.phase_two_epoch:
            acc = evaluate(args, model.module if hasattr(model, "module") else model)
            args.evaluated += 1
            if acc > best_acc:
                best_acc = acc
                best_state_dict = copy.deepcopy(model.state_dict())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--phase_two_epoch", type=int, default=2)
    args = parser.parse_args()
    if os.environ.get("LOCAL_RANK") is not None:
        args.local_rank = int(os.environ["LOCAL_RANK"])
    if args.local_rank == -1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend="nccl")
    args.device = device
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1).to(args.device)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[args.local_rank], output_device=args.local_rank
        )
    train(args, model)
    dump_state(args.output_dir, model.module if hasattr(model, "module") else model)


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
