# A legacy-style fine-tuning script in the shape of the Hugging Face example template, written for
# ddpfix's runtime proof of DDP012 on directories (tests/test_runtime_ddp012_pretrained.py). Rank 0
# saves the trained model into the output directory with save_pretrained (one file, then the
# other, as a large model is written), and the evaluation block that every rank enters reloads it
# with from_pretrained. Without a barrier rank 1 reads the directory before rank 0 has filled it.
import argparse
import json
import os
import time

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

CONFIG_NAME, WEIGHTS_NAME = "config.json", "pytorch_model.bin"


class TinyModel(torch.nn.Module):
    """A stand-in for a transformers model: a directory of a config and a weights file."""

    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden
        self.linear = torch.nn.Linear(4, hidden)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        return self.head(torch.tanh(self.linear(x)))

    def save_pretrained(self, save_directory):
        os.makedirs(save_directory, exist_ok=True)
        with open(os.path.join(save_directory, CONFIG_NAME), "w") as handle:
            json.dump({"hidden": self.hidden}, handle)
        time.sleep(1)  # a large weights file takes a while
        torch.save(self.state_dict(), os.path.join(save_directory, WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, directory):
        weights = os.path.join(directory, WEIGHTS_NAME)
        if not os.path.isfile(weights):
            raise OSError("no file named %s found in directory %s" % (WEIGHTS_NAME, directory))
        with open(os.path.join(directory, CONFIG_NAME)) as handle:
            model = cls(json.load(handle)["hidden"])
        model.load_state_dict(torch.load(weights))
        return model


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def train(args, model):
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 4, generator=generator), torch.randn(16, 1, generator=generator))
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    loader = DataLoader(data, sampler=sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for x, y in loader:
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true")
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    torch.manual_seed(42)
    model = TinyModel(8)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    if args.do_train:
        train(args, model)
    save_directory = os.path.join(args.output_dir, "final")
    if args.do_train and (args.local_rank == -1 or torch.distributed.get_rank() == 0):
        time.sleep(2)  # rank 0 logs and tidies up before saving
        model_to_save = model.module if hasattr(model, "module") else model
        model_to_save.save_pretrained(save_directory)
        model = TinyModel.from_pretrained(save_directory)
    if args.do_eval:
        checkpoints = [save_directory]
        for checkpoint in checkpoints:
            model = TinyModel.from_pretrained(checkpoint)
            print("rank %s loaded %s" % (os.environ.get("RANK"), checkpoint), flush=True)
    dump_state(args.output_dir, model)


if __name__ == "__main__":
    main()
