"""A seq2seq-template trainer (written for ddpfix): the in-loop dev evaluation also resets the
counters that drive gradient accumulation, and writes dev.output and checkpoints."""
import argparse
import json
import os

import torch
import torch.nn as nn
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
    x = torch.randn(n, 8, generator=g)
    y = (x.sum(dim=1) > 0).long()
    return TensorDataset(x, y)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true")
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--train_steps", type=int, default=24)
    parser.add_argument("--eval_steps", type=int, default=3)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=2)
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()

    if args.local_rank == -1 or args.no_cuda:
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')
        args.n_gpu = 1

    torch.manual_seed(42)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    model.to(device)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fct = nn.CrossEntropyLoss()

    if args.do_train:
        train_data = make_data(64, 0)
        if args.local_rank == -1:
            train_sampler = RandomSampler(train_data)
        else:
            train_sampler = DistributedSampler(train_data)
        train_dataloader = DataLoader(train_data, sampler=train_sampler, batch_size=4)
        model.train()
        nb_tr_steps, tr_loss, global_step, best_acc = 0, 0, 0, 0
        eval_flag = True
        batches = iter(train_dataloader)
        for step in range(args.train_steps):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(train_dataloader)
                batch = next(batches)
            x, y = tuple(t.to(device) for t in batch)
            loss = loss_fct(model(x), y)
            if args.gradient_accumulation_steps > 1:
                loss = loss / args.gradient_accumulation_steps
            tr_loss += loss.item()
            nb_tr_steps += 1
            loss.backward()
            if (nb_tr_steps + 1) % args.gradient_accumulation_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
                global_step += 1
                eval_flag = True

            if args.do_eval and ((global_step + 1) % args.eval_steps == 0) and eval_flag:
                # Eval model with dev dataset
                tr_loss = 0
                nb_tr_steps = 0
                eval_flag = False
                dev_data = make_data(20, 1)
                dev_dataloader = DataLoader(dev_data, sampler=SequentialSampler(dev_data), batch_size=8)
                model.eval()
                correct, lines = 0, []
                for x, y in dev_dataloader:
                    with torch.no_grad():
                        pred = model(x.to(device)).argmax(dim=1).cpu()
                    correct += int((pred == y).sum())
                    lines.extend(str(int(p)) for p in pred)
                model.train()
                with open(os.path.join(args.output_dir, "dev.output"), "w") as f:
                    f.write("\n".join(lines) + "\n")
                acc = correct / len(dev_data)
                if acc >= best_acc:
                    best_acc = acc
                    model_to_save = model.module if hasattr(model, "module") else model
                    torch.save(model_to_save.state_dict(), os.path.join(args.output_dir, "best.bin"))

    model_to_save = model.module if hasattr(model, "module") else model
    dump_state(args.output_dir, model_to_save)


if __name__ == "__main__":
    main()
