"""A sequence-classification fine-tuner (written for ddpfix, in the style of the 2020 HF example
scripts its forks kept): it shards its data with a DistributedSampler when --local_rank is given
but never wraps the model, and reads its rank only from --local_rank. While training it
evaluates "only when single GPU" every few steps and stops early once the dev loss has not
improved for --patience evaluations; numbered checkpoints are saved on the way, and the final
model goes to --output_dir/model.bin."""
import argparse
import json
import os

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def dump_state(output_dir, model, steps):
    """Leave this process's end state for the test: its rank, the optimizer steps it took and a
    hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        state = {"rank": os.environ.get("RANK"), "params": digest.hexdigest(), "steps": steps}
        json.dump(state, handle)


def make_data(n, seed, shift):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x[:, :4].sum(dim=1, keepdim=True) + shift * x[:, 4:].sum(dim=1, keepdim=True)
    return TensorDataset(x, y)


def evaluate(args, model, dataset):
    loader = DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=16)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for x, y in loader:
            total += torch.nn.functional.mse_loss(model(x), y, reduction="sum").item()
    model.train()
    return {"loss": total / len(dataset)}


def train(args, train_dataset, dev_dataset, model):
    if args.local_rank == -1:
        train_sampler = RandomSampler(train_dataset)
    else:
        train_sampler = DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    global_step, tr_loss = 0, 0.0
    best_loss, bad_evals = float("inf"), 0
    for epoch in range(args.num_train_epochs):
        for x, y in train_dataloader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            tr_loss += loss.item()
            global_step += 1

            if args.local_rank in [-1, 0] and global_step % args.logging_steps == 0:
                # Only evaluate when single GPU otherwise metrics may not average well
                if args.local_rank == -1 and args.evaluate_during_training:
                    results = evaluate(args, model, dev_dataset)
                    if results["loss"] < best_loss:
                        best_loss, bad_evals = results["loss"], 0
                    else:
                        bad_evals += 1
                    if bad_evals == args.patience:
                        print("early stop at step %d" % global_step)
                        return global_step, tr_loss / global_step

            if args.local_rank in [-1, 0] and global_step % args.save_steps == 0:
                output_dir = os.path.join(args.output_dir, "checkpoint-%d" % global_step)
                if not os.path.exists(output_dir):
                    os.makedirs(output_dir)
                torch.save(model.state_dict(), os.path.join(output_dir, "checkpoint.bin"))
    return global_step, tr_loss / global_step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", default="output")
    parser.add_argument("--evaluate_during_training", action="store_true")
    parser.add_argument("--num_train_epochs", type=int, default=20)
    parser.add_argument("--logging_steps", type=int, default=2)
    parser.add_argument("--save_steps", type=int, default=4)
    parser.add_argument("--patience", type=int, default=2)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="nccl")
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    # the dev set weighs features the training set ignores: its loss soon stops improving
    train_dataset, dev_dataset = make_data(64, 1, 0.0), make_data(32, 2, 1.0)
    global_step, _ = train(args, train_dataset, dev_dataset, model)

    if args.local_rank == -1 or torch.distributed.get_rank() == 0:
        if not os.path.exists(args.output_dir):
            os.makedirs(args.output_dir)
        torch.save(model.state_dict(), os.path.join(args.output_dir, "model.bin"))
    dump_state(args.output_dir, model, global_step)


if __name__ == "__main__":
    main()
