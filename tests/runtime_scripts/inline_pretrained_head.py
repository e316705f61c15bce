"""A half-distributed clone-detection trainer (written for ddpfix, in the style of a
GraphCodeBERT distillation fork): its process group and DistributedSampler are there, and its
model is a transformers classifier built inline from a config and put inside a model class of
the project, which reads the encoder's hidden states through ``encoder.roberta`` and never the
built-in classification head."""
import argparse
import json
import os

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler
from transformers import RobertaConfig, RobertaForSequenceClassification


class Model(nn.Module):
    def __init__(self, encoder, config, args):
        super().__init__()
        self.encoder = encoder
        self.args = args
        self.head = nn.Linear(config.hidden_size, 2)

    def forward(self, input_ids, labels):
        hidden = self.encoder.roberta(input_ids, attention_mask=input_ids.ne(1))[0]
        logits = self.head(hidden[:, 0, :])
        return nn.functional.cross_entropy(logits, labels)


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
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    if args.local_rank != -1:
        torch.distributed.init_process_group(backend="gloo")
    args.n_gpu = torch.cuda.device_count() if args.local_rank == -1 else 1
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16,
    )
    model = Model(RobertaForSequenceClassification(config=config), config, args)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1)
    data = TensorDataset(
        torch.randint(2, 50, (16, 6), generator=generator),
        torch.randint(0, 2, (16,), generator=generator),
    )
    sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
    for epoch in range(2):
        for ids, labels in DataLoader(data, sampler=sampler, batch_size=4):
            loss = model(ids, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    state = model.module if hasattr(model, "module") else model
    dump_state(args.output_dir, state)


if __name__ == "__main__":
    main()
