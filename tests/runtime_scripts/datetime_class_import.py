"""A launcher-era trainer (written for ddpfix) that names its run after the clock with the
``datetime`` class imported under the module's name, as many research scripts do."""
import argparse
import json
import os
from datetime import datetime

import torch


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
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    run_name = datetime.now().strftime("%Y%m%d")
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        loss = model(torch.ones(2, 4) * (step + 1)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print("run %s done" % run_name)
    dump_state(args.output_dir, model)


if __name__ == "__main__":
    main()
