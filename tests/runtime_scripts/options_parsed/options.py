# The argument module of a project whose scripts import their options (written for ddpfix):
# setup_args() declares --local_rank and parses; the scripts that import it read the rank.
import argparse


def setup_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    return args
