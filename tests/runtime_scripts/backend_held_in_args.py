"""A detection-style trainer (written for ddpfix, in the style of DETR/FreeYOLO's
``init_distributed_mode``): the backend is chosen once, ``args.dist_backend = 'nccl'``, and
handed to ``init_process_group`` by name."""
import argparse
import json
import os

import torch


def init_distributed_mode(args):
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        args.rank = int(os.environ["RANK"])
        args.world_size = int(os.environ["WORLD_SIZE"])
    else:
        args.distributed = False
        return
    args.distributed = True
    args.dist_backend = 'nccl'
    torch.distributed.init_process_group(backend=args.dist_backend, init_method="env://",
                                         world_size=args.world_size, rank=args.rank)
    torch.distributed.barrier()


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    init_distributed_mode(args)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    if args.distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1 + getattr(args, "rank", 0))
    for _ in range(3):
        loss = model(torch.randn(4, 4, generator=generator)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dump_state(args.output_dir, model.module if args.distributed else model)


if __name__ == "__main__":
    main()
