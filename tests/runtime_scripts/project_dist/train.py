"""A torchrun-era trainer (written for ddpfix) that sets up its process group through the
project's own helper of the same name as torch's."""
import argparse
import json
import os

import torch

from dist_utils import init_process_group, is_master


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
    init_process_group()
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        loss = model(torch.ones(2, 4) * (step + 1)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if is_master():
        torch.save(model.module.state_dict(), os.path.join(args.output_dir, "model.bin"))
    dump_state(args.output_dir, model)


if __name__ == "__main__":
    main()
