"""A trainer (written for ddpfix) whose model code is its own, in LongCoder's shape: a decoder on
transformers' ``PreTrainedModel`` written for transformers 4. It imports
``find_pruneable_heads_and_indices`` (and prunes a head with it), builds its additive mask with
``self.get_extended_attention_mask`` and returns a ``ModelOutput`` dataclass declaring
``past_key_values``. On transformers 5 every rank dies at the import; past it, at the mask; past
that, building the output."""
import argparse
import json
import math
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from transformers import PretrainedConfig
from transformers.modeling_utils import PreTrainedModel
from transformers.pytorch_utils import find_pruneable_heads_and_indices, prune_linear_layer
from transformers.utils import ModelOutput


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


@dataclass
class DecoderOutput(ModelOutput):
    last_hidden_state: torch.FloatTensor
    logits: Optional[torch.FloatTensor] = None
    past_key_values: Optional[Tuple[torch.FloatTensor]] = None


class SelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.num_heads = heads
        self.head_size = width // heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.dense = nn.Linear(width, width)
        self.pruned_heads = set()

    def prune_heads(self, heads):
        heads, index = find_pruneable_heads_and_indices(
            heads, self.num_heads, self.head_size, self.pruned_heads
        )
        self.query = prune_linear_layer(self.query, index)
        self.key = prune_linear_layer(self.key, index)
        self.value = prune_linear_layer(self.value, index)
        self.dense = prune_linear_layer(self.dense, index, dim=1)
        self.num_heads -= len(heads)
        self.pruned_heads = self.pruned_heads.union(heads)

    def forward(self, hidden, mask):
        b, t, _ = hidden.shape
        split = lambda x: x.view(b, t, self.num_heads, self.head_size).transpose(1, 2)
        q, k, v = split(self.query(hidden)), split(self.key(hidden)), split(self.value(hidden))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size) + mask[:, None, None, :]
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
        return self.dense(context), (k, v)


class Decoder(PreTrainedModel):
    config_class = PretrainedConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(16, 12)
        self.attention = SelfAttention(12, 3)
        self.head = nn.Linear(12, 2)

    def _init_weights(self, module):
        pass

    def forward(self, input_ids, attention_mask):
        mask = self.get_extended_attention_mask(attention_mask, input_ids.shape)[:, 0, 0, :]
        hidden, cache = self.attention(self.embed(input_ids), mask)
        logits = self.head(hidden[:, 0])
        return DecoderOutput(last_hidden_state=hidden, logits=logits, past_key_values=cache)


def make_examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 16, (n, 6), generator=g)
    lengths = torch.randint(3, 7, (n,), generator=g)
    ids[torch.arange(6)[None, :] >= lengths[:, None]] = 0  # padding
    return [(row, int(row[0] % 2)) for row in ids]


def collate(batch):
    ids = torch.stack([row for row, _ in batch])
    return ids, ids.ne(0).long(), torch.tensor([y for _, y in batch])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    dist.init_process_group(backend="gloo")
    torch.manual_seed(7)
    model = Decoder(PretrainedConfig())
    model.attention.prune_heads([1])
    model = DDP(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    examples = make_examples(32, 0)
    sampler = DistributedSampler(examples)
    loader = DataLoader(examples, sampler=sampler, batch_size=4, collate_fn=collate)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for ids, mask, labels in loader:
            outputs = model(ids, mask)
            assert outputs.past_key_values[0].shape[1] == 2  # the heads left after pruning
            loss = nn.functional.cross_entropy(outputs.logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if dist.get_rank() == 0:
        with open(os.path.join(args.output_dir, "heads.txt"), "w") as handle:
            handle.write("%d %s\n" % (model.module.attention.num_heads, sorted(model.module.attention.pruned_heads)))
    dump_state(args.output_dir, model.module)


if __name__ == "__main__":
    main()
