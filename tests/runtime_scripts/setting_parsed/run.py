# A script of that project (written for ddpfix): rank 0 decides the early stop alone (written
# for torch.distributed.launch's --local_rank); the engine it imports synchronises every step.
import json
import os

import torch.distributed as dist

from engine import Engine
from setting import init_distributed, parse


def main():
    args = parse()
    init_distributed()
    engine = Engine(args)
    epochs = 0
    for _ in range(args.num_epochs):
        engine.train_epoch()
        epochs += 1
        if args.local_rank == 0:
            if engine.should_stop(1.0):
                break
    path = os.path.join(args.output_dir, "done-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"local_rank": args.local_rank, "epochs": epochs}, handle)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
