"""A DDP trainer (written for ddpfix) with UniXcoder's seq2seq shape, on a tiny RoBERTa decoder
built from a config: training runs the target over the source's cache, and rank 0 decodes the
test set greedily in the beam search's shape, the source's cache sliced per example and passed
with the whole prefix at every step, writing each prediction and the one a pass over source and
prefix without a cache gives. Written for transformers 4: on 5 the 3-D masks and the nested
lists given back as past_key_values stop it."""
import argparse
import json
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from transformers import RobertaConfig, RobertaModel


def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)


class Seq2Seq(nn.Module):
    def __init__(self, encoder, decoder, config, beam_size=None, max_length=None, sos_id=None):
        super(Seq2Seq, self).__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.register_buffer(
            "bias", torch.tril(torch.ones((64, 64), dtype=torch.uint8)).view(1, 64, 64)
        )
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.beam_size = beam_size
        self.max_length = max_length
        self.sos_id = sos_id

    def forward(self, source_ids, target_ids):
        mask = source_ids.ne(1)[:, None, :] * source_ids.ne(1)[:, :, None]
        encoder_output = self.encoder(source_ids, attention_mask=mask, use_cache=True)
        ids = torch.cat((source_ids, target_ids), -1)
        mask = self.bias[:, source_ids.size(-1):ids.size(-1), :ids.size(-1)].bool()
        mask = mask & ids[:, None, :].ne(1)
        out = self.decoder(target_ids, attention_mask=mask, past_key_values=encoder_output.past_key_values).last_hidden_state
        logits = self.lm_head(out)[:, :-1]
        return nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target_ids[:, 1:].reshape(-1))

    def generate(self, source_ids):
        mask = source_ids.ne(1)[:, None, :] * source_ids.ne(1)[:, :, None]
        encoder_output = self.encoder(source_ids, attention_mask=mask, use_cache=True)
        preds = []
        source_len = list(source_ids.ne(1).sum(-1).cpu().numpy())
        for i in range(source_ids.shape[0]):
            context = [[x[i:i + 1, :, :source_len[i]].repeat(self.beam_size, 1, 1, 1) for x in y]
                       for y in encoder_output.past_key_values]
            input_ids = torch.full((self.beam_size, 1), self.sos_id, dtype=torch.long)
            context_ids = source_ids[i:i + 1, :source_len[i]].repeat(self.beam_size, 1)
            for _ in range(self.max_length):
                ids = torch.cat((context_ids, input_ids), -1)
                mask = self.bias[:, context_ids.size(-1):ids.size(-1), :ids.size(-1)].bool()
                mask = mask & ids[:, None, :].ne(1)
                out = self.decoder(input_ids, attention_mask=mask, past_key_values=context).last_hidden_state
                next_ids = self.lm_head(out[:, -1, :]).argmax(-1, keepdim=True)
                input_ids = torch.cat((input_ids, next_ids), -1)
            preds.append(input_ids[0].tolist())
        return preds

    def generate_without_cache(self, source_ids):
        """The same greedy decoding, one pass over source and prefix at every step."""
        preds = []
        for row in source_ids:
            source = row[row.ne(1)][None, :]
            n = source.size(-1)
            prefix = torch.full((1, 1), self.sos_id, dtype=torch.long)
            for _ in range(self.max_length):
                ids = torch.cat((source, prefix), -1)
                mask = self.bias[:, :ids.size(-1), :ids.size(-1)].bool().clone()
                mask[:, :n, :n] = True
                out = self.decoder(ids, attention_mask=mask).last_hidden_state
                prefix = torch.cat((prefix, self.lm_head(out[:, -1, :]).argmax(-1, keepdim=True)), -1)
            preds.append(prefix[0].tolist())
        return preds


def make_examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    source = torch.randint(3, 40, (n, 8), generator=g)
    lengths = torch.randint(4, 9, (n,), generator=g)
    source[torch.arange(8)[None, :] >= lengths[:, None]] = 1  # padding
    target = torch.cat((torch.zeros(n, 1, dtype=torch.long), (source[:, :4] + 1) % 40), -1)
    return list(zip(source, target))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    dist.init_process_group(backend="gloo")
    torch.manual_seed(7)
    config = RobertaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=40, type_vocab_size=1)
    config.is_decoder = True
    encoder = RobertaModel(config, add_pooling_layer=False)
    model = DDP(Seq2Seq(encoder, encoder, config, beam_size=2, max_length=4, sos_id=0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    examples = make_examples(16, 0)
    sampler = DistributedSampler(examples)
    loader = DataLoader(examples, sampler=sampler, batch_size=4)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for source, target in loader:
            loss = model(source, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if dist.get_rank() == 0:
        seq2seq = model.module.eval()
        source = torch.stack([s for s, _ in make_examples(6, 1)])
        with torch.no_grad():
            cached, full = seq2seq.generate(source), seq2seq.generate_without_cache(source)
        with open(os.path.join(args.output_dir, "predictions.jsonl"), "w") as handle:
            for got, want in zip(cached, full):
                handle.write(json.dumps({"cached": got, "full": want}) + "\n")
    dump_state(args.output_dir, model.module)


if __name__ == "__main__":
    main()
