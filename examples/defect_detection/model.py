"""A small sequence classifier over a pretrained encoder, in the style of 2020 research code."""
import torch
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self, encoder, config, tokenizer, args):
        super(Classifier, self).__init__()
        self.encoder = encoder
        self.config = config
        self.tokenizer = tokenizer
        self.args = args
        self.head = nn.Linear(config.hidden_size, 2)

    def forward(self, input_ids=None, labels=None):
        # token id 1 is <pad> in the tokenizers these scripts use
        hidden = self.encoder(input_ids, attention_mask=input_ids.ne(1))[0]
        logits = self.head(hidden[:, 0, :])
        prob = torch.softmax(logits, -1)
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
            return loss, prob
        return prob
