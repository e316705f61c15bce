"""A small graph-augmented masked-LM trainer, written for ddpfix's health checks.

Root tokens attend to their leaves along typed relations; the attention decays with a learnable
distance offset; a trainer object owns the LM head. Three bugs of a real project can be planted:

    --bug orphan    the trainer creates its LM head after the optimizer, on itself (not a
                    Module): the head gets gradients and never trains
    --bug decay     the decay offset is clamped after it is subtracted: while it exceeds every
                    distance its gradient is exactly 0
    --bug sentinel  relation -1 ("no edge") is clamped to 0 and reaches the loss as relation 0
    --bug none      all three fixed
"""

import argparse

import torch
import torch.nn as nn

VOCAB, HIDDEN, RELATIONS = 50, 16, 4


class GraphEncoder(nn.Module):
    def __init__(self, bug):
        super().__init__()
        self.bug = bug
        self.tokens = nn.Embedding(VOCAB, HIDDEN)
        self.relations = nn.Embedding(RELATIONS, HIDDEN)
        # the decay starts at this distance; clamped, it gets no gradient while above every distance
        self.decay_offset = nn.Parameter(torch.tensor(5.0 if bug in ("decay", "all") else 0.5))
        self.mix = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, roots, leaves, relation_ids, distance):
        h = self.tokens(roots)
        if self.bug in ("sentinel", "all"):
            r = self.relations(relation_ids.clamp(min=0))  # -1 "no edge" becomes relation 0
        else:
            mask = (relation_ids >= 0).unsqueeze(-1).float()
            r = self.relations(relation_ids.clamp(min=0)) * mask
        if self.bug in ("decay", "all"):
            decay = torch.exp(-(distance - self.decay_offset).clamp(min=0))
        else:
            decay = torch.exp(-nn.functional.softplus(distance - self.decay_offset))
        leaf = (self.tokens(leaves) + r) * decay.unsqueeze(-1)
        return torch.tanh(self.mix(h + leaf.mean(dim=1)))


class Trainer:
    def __init__(self, args):
        self.args = args
        self.encoder = GraphEncoder(args.bug)
        if args.bug in ("orphan", "all"):
            self.optimizer = torch.optim.AdamW(self.encoder.parameters(), lr=1e-2)
            self.lm_head = nn.Linear(HIDDEN, VOCAB)  # created after the optimizer: never trained
        else:
            self.lm_head = nn.Linear(HIDDEN, VOCAB)
            params = list(self.encoder.parameters()) + list(self.lm_head.parameters())
            self.optimizer = torch.optim.AdamW(params, lr=1e-2)

    def step(self, batch):
        roots, leaves, relation_ids, distance, targets = batch
        logits = self.lm_head(self.encoder(roots, leaves, relation_ids, distance))
        loss = nn.functional.cross_entropy(logits, targets)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss.item()


def batches(steps, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        roots = torch.randint(0, VOCAB, (8,), generator=generator)
        leaves = torch.randint(0, VOCAB, (8, 3), generator=generator)
        relation_ids = torch.randint(-1, RELATIONS, (8, 3), generator=generator)
        distance = torch.rand(8, 3, generator=generator) * 3
        yield roots, leaves, relation_ids, distance, roots


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--bug", choices=["none", "orphan", "decay", "sentinel", "all"], default="none"
    )
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    trainer = Trainer(args)
    for batch in batches(args.steps):
        trainer.step(batch)


if __name__ == "__main__":
    main()
