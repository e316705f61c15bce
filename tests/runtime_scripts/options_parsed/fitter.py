# The project's training loop (written for ddpfix): it wraps the model in DDP when the script
# says it runs distributed, and never sets up a process group itself.
import torch


class Fitter:
    def __init__(self, args, model, loader):
        self.args = args
        self.model = model
        self.loader = loader
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def fit(self):
        model = self.model
        if self.args.local_rank != -1:
            model = torch.nn.parallel.DistributedDataParallel(model)
        for _ in range(self.args.num_epochs):
            for (features,) in self.loader:
                loss = model(features).pow(2).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
        return self.model
