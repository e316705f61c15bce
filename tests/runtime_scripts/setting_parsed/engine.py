# The project's engine (written for ddpfix): it owns the DDP model and counts patience.
import torch
from torch.nn.parallel import DistributedDataParallel


class Engine:
    def __init__(self, args):
        torch.manual_seed(0)
        self.args = args
        self.model = DistributedDataParallel(torch.nn.Linear(4, 1))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.best = None
        self.stale = 0

    def train_epoch(self):
        loss = self.model(torch.ones(2, 4)).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def should_stop(self, score):
        # the score never improves after the first epoch: patience runs out early
        if self.best is None:
            self.best = score
        else:
            self.stale += 1
        return self.stale >= self.args.patience
