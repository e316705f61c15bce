"""Pair classifier over a shared encoder, in the style of 2020 clone-detection code."""
import torch
import torch.nn as nn


class PairHead(nn.Module):
    def __init__(self, config):
        super(PairHead, self).__init__()
        self.dense = nn.Linear(config.hidden_size * 2, config.hidden_size)
        # RoBERTa names it hidden_dropout_prob, GPT-2 resid_pdrop
        self.dropout = nn.Dropout(getattr(config, 'hidden_dropout_prob', None) or config.resid_pdrop)
        self.out_proj = nn.Linear(config.hidden_size, 2)

    def forward(self, features):
        x = features[:, 0, :].reshape(-1, features.size(-1) * 2)  # <s> of both functions
        x = torch.tanh(self.dense(self.dropout(x)))
        return self.out_proj(self.dropout(x))


class Model(nn.Module):
    def __init__(self, encoder, config, tokenizer, args):
        super(Model, self).__init__()
        self.encoder = encoder
        self.config = config
        self.tokenizer = tokenizer
        self.head = PairHead(config)
        self.args = args

    def forward(self, input_ids=None, labels=None):
        input_ids = input_ids.view(-1, self.args.block_size)
        outputs = self.encoder(input_ids=input_ids, attention_mask=input_ids.ne(1))[0]
        logits = self.head(outputs)
        prob = torch.softmax(logits, -1)
        if labels is not None:
            loss = nn.CrossEntropyLoss()(logits, labels)
            return loss, prob
        return prob
