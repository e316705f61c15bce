# A legacy-style half-distributed trainer in the shape of CodeT5's run_gen.py with an early stop,
# written for ddpfix's runtime proof of the broadcast DDP014 carries with its wrap
# (tests/test_runtime_broadcast_state.py). The data are sharded with a DistributedSampler but
# the model is only wrapped in DataParallel (on a multi-GPU machine): each rank trains its own
# copy. Rank 0 alone evaluates (every other epoch) and counts the evaluations without improvement
# (patience); every rank leaves training on that count. Unwrapped, that is harmless (rank 0 stops first, the others
# train on alone). Wrapped in DDP, rank 0 would leave while the others wait in backward's
# all-reduce, unless rank 0's count reaches every rank first.
import argparse
import json
import os

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def evaluate(args, model):
    """The dev loss: this toy never improves after the first epoch, so rank 0 runs out of
    patience."""
    return 1.0


def train(args, model):
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 4, generator=generator), torch.randn(64, 1, generator=generator))
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    patience, best_loss = 0, 1e10
    for epoch in range(args.epochs):
        for x, y in loader:
            loss = ((model(x.to(args.device)) - y.to(args.device)) ** 2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        if args.local_rank in [-1, 0] and (epoch + 1) % args.eval_epochs == 0:
            dev_loss = evaluate(args, model)
            if dev_loss < best_loss:
                best_loss = dev_loss
                patience = 0
            else:
                patience += 1
        if patience > args.patience:
            break
    return epoch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--eval_epochs", type=int, default=2)
    args = parser.parse_args()
    if os.environ.get("LOCAL_RANK") is not None:
        args.local_rank = int(os.environ["LOCAL_RANK"])
    if args.local_rank == -1:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend="nccl")
        args.n_gpu = 1
    args.device = device
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1).to(args.device)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    stopped = train(args, model)
    print("rank %s stopped after epoch %d" % (os.environ.get("RANK"), stopped), flush=True)
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
