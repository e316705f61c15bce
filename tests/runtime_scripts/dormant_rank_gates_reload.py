"""A defect-detection fork (written for ddpfix, in the style of 2021 CodeXGLUE code): it shards its
data with a DistributedSampler but never wraps the model, and reads its rank only from
--local_rank. Training saves the best checkpoint behind a local-rank gate, and main() reloads it
on every process; a dev-set block then keeps model_best.pt and reloads it too."""
import argparse
import json
import os

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    return TensorDataset(x, (x.sum(dim=1, keepdim=True) > 0).long())


def evaluate(args, model, dataset):
    loader = DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=16)
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int(((model(x) > 0).long() == y).sum())
    return {"eval_acc": correct / len(dataset)}


def train(args, train_dataset, eval_dataset, model):
    if args.local_rank == -1:
        train_sampler = RandomSampler(train_dataset)
    else:
        train_sampler = DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    best_acc = -1.0
    global_step = 0
    for epoch in range(args.num_train_epochs):
        for x, y in train_dataloader:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y.float())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if args.local_rank in [-1, 0] and global_step % args.save_steps == 0:
                results = evaluate(args, model, eval_dataset)
                if results["eval_acc"] > best_acc:
                    best_acc = results["eval_acc"]
                    output_dir = os.path.join(args.output_dir, "checkpoint-best-acc")
                    if not os.path.exists(output_dir):
                        os.makedirs(output_dir)
                    torch.save(model.state_dict(), os.path.join(output_dir, "model.bin"))
    return global_step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--output_dir", default="saved_models")
    parser.add_argument("--num_train_epochs", type=int, default=2)
    parser.add_argument("--save_steps", type=int, default=4)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="nccl")
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 1)
    train_dataset, eval_dataset = make_data(64, 1), make_data(2000, 2)
    train(args, train_dataset, eval_dataset, model)

    checkpoint = os.path.join(args.output_dir, "checkpoint-best-acc", "model.bin")
    model.load_state_dict(torch.load(checkpoint))

    best_accuracy = -1.0
    for ie in range(2):
        with torch.no_grad():
            model.weight.mul_(0.5)
        if args.do_eval:
            result = evaluate(args, model, eval_dataset)
            with open(os.path.join(args.output_dir, "dev_log.txt"), "a") as aw:
                aw.write(json.dumps(result) + "\n")
            if result["eval_acc"] >= best_accuracy:
                torch.save(model.state_dict(), os.path.join(args.output_dir, "model_best.pt"))
                best_accuracy = result["eval_acc"]
    if args.do_eval:
        model.load_state_dict(torch.load(os.path.join(args.output_dir, "model_best.pt")))
    dump_state(args.output_dir, model)


if __name__ == "__main__":
    main()
