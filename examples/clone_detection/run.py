# A legacy-style clone-detection script, written for ddpfix's tests and examples.
# Shaped like the 2020 template: a function table (data.jsonl) plus pair files, a random 10% of
# the training and validation pairs, evaluation gated for `torch.distributed.launch`, and the
# imports of that era (transformers' AdamW, an optional tensorboard writer).
from __future__ import absolute_import, division, print_function

import argparse
import json
import logging
import os
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler, RandomSampler
from torch.utils.data.distributed import DistributedSampler

try:
    from torch.utils.tensorboard import SummaryWriter
except:
    from tensorboardX import SummaryWriter

from transformers import (AdamW, get_linear_schedule_with_warmup,
                          RobertaConfig, RobertaModel, RobertaTokenizer,
                          GPT2Config, GPT2Model, GPT2Tokenizer)

from model import Model

logger = logging.getLogger(__name__)

MODEL_CLASSES = {
    'roberta': (RobertaConfig, RobertaModel, RobertaTokenizer),  # CodeBERT
    'gpt2': (GPT2Config, GPT2Model, GPT2Tokenizer),  # CodeGPT
}


class PairExample(object):
    def __init__(self, input_ids, label, url1, url2):
        self.input_ids = input_ids
        self.label = label
        self.url1 = url1
        self.url2 = url2


def encode_function(code, tokenizer, block_size):
    tokens = tokenizer.tokenize(' '.join(code.split()))[:block_size - 2]
    # GPT-2 tokenizers have no <cls>/<sep>: their <s>/</s> take the places
    tokens = [tokenizer.cls_token or tokenizer.bos_token] + tokens + [
        tokenizer.sep_token or tokenizer.eos_token]
    ids = tokenizer.convert_tokens_to_ids(tokens)
    return ids + [tokenizer.pad_token_id] * (block_size - len(ids))


class PairDataset(Dataset):
    def __init__(self, tokenizer, args, file_path):
        index_file = os.path.join(os.path.dirname(file_path), 'data.jsonl')
        url_to_code = {}
        with open(index_file) as f:
            for line in f:
                js = json.loads(line.strip())
                url_to_code[js['idx']] = js['func']
        pairs = []
        with open(file_path) as f:
            for line in f:
                url1, url2, label = line.strip().split('\t')
                if url1 in url_to_code and url2 in url_to_code:
                    pairs.append((url1, url2, 0 if label == '0' else 1))
        if 'test' not in os.path.basename(file_path):
            pairs = random.sample(pairs, int(len(pairs) * 0.1))
        self.examples = []
        for url1, url2, label in pairs:
            ids = encode_function(url_to_code[url1], tokenizer, args.block_size) + \
                encode_function(url_to_code[url2], tokenizer, args.block_size)
            self.examples.append(PairExample(ids, label, url1, url2))

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return torch.tensor(self.examples[i].input_ids), torch.tensor(self.examples[i].label)


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(args, train_dataset, model, tokenizer):
    args.train_batch_size = args.per_gpu_train_batch_size * max(1, args.n_gpu)
    train_sampler = RandomSampler(train_dataset) if args.local_rank == -1 else DistributedSampler(train_dataset)
    train_dataloader = DataLoader(train_dataset, sampler=train_sampler, batch_size=args.train_batch_size)
    args.max_steps = args.epoch * len(train_dataloader)
    args.save_steps = len(train_dataloader)
    model.to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.learning_rate, eps=1e-8)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0, num_training_steps=args.max_steps)
    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.local_rank],
                                                          output_device=args.local_rank,
                                                          find_unused_parameters=True)
    global_step = 0
    best_f1 = 0
    model.zero_grad()
    for idx in range(args.epoch):
        for step, batch in enumerate(train_dataloader):
            model.train()
            loss, logits = model(batch[0].to(args.device), batch[1].to(args.device))
            if args.n_gpu > 1:
                loss = loss.mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            global_step += 1
            if args.local_rank in [-1, 0] and args.save_steps > 0 and global_step % args.save_steps == 0:

                if args.local_rank == -1 and args.evaluate_during_training:  # Only evaluate when single GPU otherwise metrics may not average well
                    results = evaluate(args, model, tokenizer)
                    # Save model checkpoint

                if results['eval_f1'] > best_f1:
                    best_f1 = results['eval_f1']
                    output_dir = os.path.join(args.output_dir, 'checkpoint-best-f1')
                    if not os.path.exists(output_dir):
                        os.makedirs(output_dir)
                    model_to_save = model.module if hasattr(model, 'module') else model
                    torch.save(model_to_save.state_dict(), os.path.join(output_dir, 'model.bin'))
                    logger.info("Saving model checkpoint to %s", output_dir)
    return global_step


def f1_at(probs, labels, threshold):
    preds = probs > threshold
    tp = float(np.sum(preds & (labels == 1)))
    fp = float(np.sum(preds & (labels == 0)))
    fn = float(np.sum(~preds & (labels == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def evaluate(args, model, tokenizer):
    eval_dataset = PairDataset(tokenizer, args, args.eval_data_file)
    args.eval_batch_size = args.per_gpu_eval_batch_size * max(1, args.n_gpu)
    # Note that DistributedSampler samples randomly
    eval_sampler = SequentialSampler(eval_dataset) if args.local_rank == -1 else DistributedSampler(eval_dataset)
    eval_dataloader = DataLoader(eval_dataset, sampler=eval_sampler, batch_size=args.eval_batch_size)
    model.eval()
    probs, labels = [], []
    for batch in eval_dataloader:
        with torch.no_grad():
            loss, prob = model(batch[0].to(args.device), batch[1].to(args.device))
        probs.append(prob[:, 1].cpu().numpy())
        labels.append(batch[1].numpy())
    probs, labels = np.concatenate(probs, 0), np.concatenate(labels, 0)
    best = max(((f1_at(probs, labels, t / 100), t / 100) for t in range(1, 100)))
    return {"eval_f1": best[0], "eval_threshold": best[1]}


def test(args, model, tokenizer, threshold=0.5):
    eval_dataset = PairDataset(tokenizer, args, args.test_data_file)
    args.eval_batch_size = args.per_gpu_eval_batch_size * max(1, args.n_gpu)
    eval_sampler = SequentialSampler(eval_dataset) if args.local_rank == -1 else DistributedSampler(eval_dataset)
    eval_dataloader = DataLoader(eval_dataset, sampler=eval_sampler, batch_size=args.eval_batch_size)
    model.eval()
    probs = []
    for batch in eval_dataloader:
        with torch.no_grad():
            probs.append(model(batch[0].to(args.device))[:, 1].cpu().numpy())
    preds = np.concatenate(probs, 0) > threshold
    with open(os.path.join(args.output_dir, "predictions.txt"), 'w') as f:
        for example, pred in zip(eval_dataset.examples, preds):
            f.write(example.url1 + '\t' + example.url2 + '\t' + ('1' if pred else '0') + '\n')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train_data_file", default=None, type=str, required=True)
    parser.add_argument("--output_dir", default=None, type=str, required=True)
    parser.add_argument("--eval_data_file", default=None, type=str)
    parser.add_argument("--test_data_file", default=None, type=str)
    parser.add_argument("--model_name_or_path", default=None, type=str)
    parser.add_argument("--model_type", default="roberta", type=str, help="roberta or gpt2")
    parser.add_argument("--block_size", default=64, type=int)
    parser.add_argument("--do_train", action='store_true')
    parser.add_argument("--do_eval", action='store_true')
    parser.add_argument("--do_test", action='store_true')
    parser.add_argument("--evaluate_during_training", action='store_true')
    parser.add_argument("--train_batch_size", default=4, type=int)
    parser.add_argument("--eval_batch_size", default=4, type=int)
    parser.add_argument("--learning_rate", default=5e-5, type=float)
    parser.add_argument("--epoch", type=int, default=1)
    parser.add_argument("--seed", type=int, default=123456)
    parser.add_argument("--no_cuda", action='store_true')
    parser.add_argument("--local_rank", type=int, default=-1,
                        help="For distributed training: local_rank")
    args = parser.parse_args()

    if args.local_rank == -1 or args.no_cuda:
        device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
        args.n_gpu = torch.cuda.device_count()
    else:
        torch.cuda.set_device(args.local_rank)
        device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(backend='nccl')
        args.n_gpu = 1
    args.device = device
    args.per_gpu_train_batch_size = args.train_batch_size // args.n_gpu
    args.per_gpu_eval_batch_size = args.eval_batch_size // args.n_gpu
    logging.basicConfig(level=logging.INFO if args.local_rank in [-1, 0] else logging.WARN)
    set_seed(args.seed)

    if args.local_rank not in [-1, 0]:
        torch.distributed.barrier()
    config_class, model_class, tokenizer_class = MODEL_CLASSES[args.model_type]
    config = config_class.from_pretrained(args.model_name_or_path)
    tokenizer = tokenizer_class.from_pretrained(args.model_name_or_path)
    encoder = model_class.from_pretrained(args.model_name_or_path, config=config)
    model = Model(encoder, config, tokenizer, args)
    if args.local_rank == 0:
        torch.distributed.barrier()

    if args.do_train:
        train_dataset = PairDataset(tokenizer, args, args.train_data_file)
        train(args, train_dataset, model, tokenizer)

    checkpoint = os.path.join(args.output_dir, 'checkpoint-best-f1/model.bin')
    if args.do_eval and args.local_rank in [-1, 0]:
        model.load_state_dict(torch.load(checkpoint))
        model.to(args.device)
        logger.info("eval %s", evaluate(args, model, tokenizer))
    if args.do_test and args.local_rank in [-1, 0]:
        model.load_state_dict(torch.load(checkpoint))
        model.to(args.device)
        test(args, model, tokenizer)


if __name__ == "__main__":
    main()
