# A legacy-style script ported half-way to accelerate (written for ddpfix's runtime proof of
# issue 9, class 1): it still parses --local_rank, but accelerate prepares the model, the
# optimizer and the loaders (the test loader is sharded across the ranks). The do_predict block
# scores the test set shard by shard, gathers the predictions with
# accelerator.gather_for_metrics (a collective: every rank must reach it) and writes
# predictions.txt on the main process only.
import argparse
import json
import logging
import os

import torch
import torch.nn as nn
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

logger = logging.getLogger(__name__)

N_TEST = 37  # not divisible by the world size: the last batch is padded, then dropped again
FEATURES = 8


def make_data(n, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorDataset(torch.arange(n), x, y)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default=None, type=str, required=True)
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_predict", action="store_true")
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--eval_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=0.1, type=float)
    parser.add_argument("--num_train_epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()

    # accelerate sets up the device and the process group
    accelerator = Accelerator()
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARN)
    logger.info("local_rank %s, process %d of %d", args.local_rank,
                accelerator.process_index, accelerator.num_processes)
    torch.manual_seed(args.seed)

    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    train_dataloader = DataLoader(make_data(64, 0), batch_size=args.train_batch_size, shuffle=True)
    test_dataloader = DataLoader(make_data(N_TEST, 1), batch_size=args.eval_batch_size)
    model, optimizer, train_dataloader, test_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, test_dataloader)
    loss_fct = nn.CrossEntropyLoss()

    if args.do_train:
        model.train()
        for epoch in range(args.num_train_epochs):
            for step, (_, x, y) in enumerate(train_dataloader):
                loss = loss_fct(model(x), y)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()

    if args.do_predict:
        model.eval()
        all_ids, all_preds = [], []
        for idx, x, _ in test_dataloader:
            with torch.no_grad():
                preds = model(x).argmax(dim=-1)
            idx, preds = accelerator.gather_for_metrics((idx, preds))
            all_ids.extend(idx.tolist())
            all_preds.extend(preds.tolist())
        if accelerator.is_main_process:
            with open(os.path.join(args.output_dir, "predictions.txt"), "w") as f:
                for idx, pred in zip(all_ids, all_preds):
                    f.write("%d\t%d\n" % (idx, pred))

    model_to_save = accelerator.unwrap_model(model)
    dump_state(args.output_dir, model_to_save)
    # leave the process group cleanly (gloo may abort a process that exits inside it)
    accelerator.wait_for_everyone()
    accelerator.end_training()


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


if __name__ == "__main__":
    main()
