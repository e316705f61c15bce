"""A step-based DDP trainer (written for ddpfix) in the style of CodeReviewer's fine-tuning
scripts: the rank comes from the process group, and at ``--train_steps`` rank 0 evaluates, saves
the last checkpoint and returns, behind one test with the step limit."""
import argparse
import json
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


class Classifier(nn.Module):
    def __init__(self):
        super(Classifier, self).__init__()
        self.linear = nn.Linear(4, 2)
        # a buffer, like RoBERTa's position_ids: DDP's forward broadcasts it
        self.register_buffer("scale", torch.ones(4))

    def forward(self, x):
        return self.linear(x * self.scale)


def dump_state(output_dir, model):
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    with open(os.path.join(output_dir, "state-%d.json" % os.getpid()), "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def get_data(seed):
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, (x.sum(dim=1) > 0).long())


def eval_epoch_acc(args, eval_dataloader, model):
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for xb, yb in eval_dataloader:
            correct += (model(xb).argmax(dim=1) == yb).sum().item()
            total += yb.size(0)
    model.train()
    return correct / total


def save_model(model, output_dir):
    if not os.path.exists(output_dir):
        os.makedirs(output_dir)
    model_to_save = model.module if hasattr(model, "module") else model
    torch.save(model_to_save.state_dict(), os.path.join(output_dir, "pytorch_model.bin"))


def train(args, model):
    train_data = get_data(0)
    train_dataloader = DataLoader(train_data, sampler=DistributedSampler(train_data), batch_size=2)
    valid_data = get_data(1)
    valid_dataloader = DataLoader(valid_data, sampler=SequentialSampler(valid_data), batch_size=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    global_step = 0
    for epoch in range(1, args.train_epochs + 1):
        nb_tr_steps = 0
        for step, (xb, yb) in enumerate(train_dataloader, 1):
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss = loss / args.gradient_accumulation_steps
            loss.backward()
            nb_tr_steps += 1
            if nb_tr_steps % args.gradient_accumulation_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
                global_step += 1
            if args.global_rank == 0 and global_step == args.train_steps:
                # end training
                acc = eval_epoch_acc(args, valid_dataloader, model)
                output_dir = os.path.join(args.output_dir, "checkpoints-last")
                save_model(model, output_dir)
                print("Reach max steps %d, acc %.3f" % (args.train_steps, acc))
                return


def main(args):
    dist.init_process_group(backend="gloo")
    local_rank = dist.get_rank() % args.gpu_per_node
    args.global_rank = local_rank + args.node_index * args.gpu_per_node
    args.local_rank = local_rank
    torch.manual_seed(3)
    model = DDP(Classifier())
    train(args, model)
    dump_state(args.output_dir, model.module)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--gpu_per_node", type=int, default=2)
    parser.add_argument("--node_index", type=int, default=0)
    parser.add_argument("--train_epochs", type=int, default=2)
    parser.add_argument("--train_steps", type=int, default=3)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=2)
    main(parser.parse_args())
