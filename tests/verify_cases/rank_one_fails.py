"""Two ranks join; rank 1 raises before training: verify must show rank 1's traceback tail."""

import torch.distributed as dist


def load_shard(rank):
    if rank == 1:
        raise ValueError("rank one broke while loading its shard")
    return [rank]


def main():
    dist.init_process_group("gloo")
    load_shard(dist.get_rank())
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
