"""A LightningModule that holds a learned loss, as Lightning users write it."""

from __future__ import annotations

import warnings

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from learnedloss import LearnedLoss


class HoldsALoss(L.LightningModule):
    """A module whose only change from a standard loss is the line building ``loss_fn``;
    subclasses build ``body`` and say which optimizer trains it."""

    optimizer, lr = torch.optim.SGD, 0.05

    def __init__(self, loss_name: str):
        super().__init__()
        self.save_hyperparameters()
        self.body = self.make_body()
        self.loss_fn = LearnedLoss.from_pretrained(loss_name)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self.body(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return self.optimizer(self.parameters(), lr=self.lr)


class Regressor(HoldsALoss):
    def __init__(self, loss_name: str = "mse-fit"):
        super().__init__(loss_name)

    def make_body(self):
        return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def loader():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)


def fit(model, tmp_path):
    trainer = L.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, loader())
    return trainer, [str(w.message) for w in caught]


def test_fit_trains_the_model_not_the_loss_and_warns_about_no_eval_mode(tmp_path):
    torch.manual_seed(0)
    model = Regressor()
    weights = {k: v.clone() for k, v in model.loss_fn.weights().items()}
    body = [p.detach().clone() for p in model.body.parameters()]
    trainer, messages = fit(model, tmp_path)
    assert trainer.global_step == 3
    assert not [m for m in messages if "eval mode" in m], messages
    assert any(not torch.equal(a, b) for a, b in zip(body, model.body.parameters(), strict=True))
    for key, tensor in model.loss_fn.weights().items():
        assert torch.equal(tensor, weights[key])
    assert all(not name.startswith("loss_fn") for name, _ in model.named_parameters())


def test_checkpoint_with_one_loss_loads_with_another(tmp_path):
    torch.manual_seed(0)
    model = Regressor("mse-fit")
    trainer, _ = fit(model, tmp_path)
    path = tmp_path / "regressor.ckpt"
    trainer.save_checkpoint(path)
    assert not [k for k in torch.load(path, weights_only=True)["state_dict"] if "loss_fn" in k]
    other = Regressor.load_from_checkpoint(path, loss_name="robust-regression")
    same = Regressor.load_from_checkpoint(path)
    for loaded in (other, same):
        for key, tensor in model.body.state_dict().items():
            assert torch.equal(loaded.body.state_dict()[key], tensor)
    reference = LearnedLoss.from_pretrained("robust-regression")
    x, y = torch.randn(8, 1), torch.randn(8, 1)
    assert torch.equal(other.loss_fn(x, y), reference(x, y))
    assert other.loss_fn.config != same.loss_fn.config


def test_unfreeze_and_freeze_leave_the_loss_frozen():
    model = Regressor()
    model.freeze()  # eval() and requires_grad False everywhere
    model.unfreeze()  # train() and requires_grad True on every parameter
    assert model.loss_fn.frozen and not list(model.loss_fn.parameters())
    assert not any(p.requires_grad for p in model.loss_fn.network.parameters())
    assert all(module.training for module in model.modules())


class Classifier(HoldsALoss):
    optimizer, lr = torch.optim.Adam, 0.01

    def __init__(self, loss_name: str = "noisy-labels"):
        super().__init__(loss_name)

    def make_body(self):
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def test_a_classifier_trains_and_checkpoints_with_the_noisy_labels_loss(tmp_path):
    from sklearn.datasets import load_iris

    data = load_iris()
    x = torch.tensor((data.data - data.data.mean(0)) / data.data.std(0), dtype=torch.float32)
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = Classifier()
    trainer = L.Trainer(
        max_epochs=40,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True))
    with torch.no_grad():
        accuracy = (model.body(x).argmax(dim=1) == y).float().mean().item()
    assert accuracy > 0.9
    trainer.save_checkpoint(tmp_path / "classifier.ckpt")
    loaded = Classifier.load_from_checkpoint(tmp_path / "classifier.ckpt")
    reference = LearnedLoss.from_pretrained("noisy-labels")
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    assert torch.equal(loaded.loss_fn(logits, labels), reference(logits, labels))
    assert all(not name.startswith("loss_fn") for name, _ in loaded.named_parameters())


class ScheduledRegressor(Regressor):
    """The one line of docs/progress.md in ``training_step``."""

    def training_step(self, batch, batch_idx):
        self.loss_fn.progress(self.global_step, self.trainer.estimated_stepping_batches)
        x, y = batch
        prediction = self.body(x)
        loss = self.loss_fn(prediction, y)
        self.seen.append((self.loss_fn.training_progress, loss.detach(), prediction.detach(), y))
        return loss


def test_training_step_gives_a_progress_loss_its_schedule(tmp_path):
    from learnedloss.starts import monotone_start_config

    loss = LearnedLoss(monotone_start_config("mse", adapt_to="progress"))
    with torch.no_grad():  # MSE at progress 0, another shape at 1
        theta = loss.network.log_influence
        theta[2].copy_(torch.linspace(0.0, -2.0, theta.shape[1]))
    loss.save_pretrained(tmp_path / "progress-loss")
    torch.manual_seed(0)
    model = ScheduledRegressor(str(tmp_path / "progress-loss"))
    model.seen = []
    trainer, _ = fit(model, tmp_path)
    assert [progress for progress, *_ in model.seen] == [0.0, 1 / 3, 2 / 3]
    reference = LearnedLoss.from_pretrained(tmp_path / "progress-loss")
    for progress, value, prediction, y in model.seen:  # each step's loss is that progress's
        torch.testing.assert_close(value, reference.progress(progress, 1.0)(prediction, y))
    assert model.seen[0][1] != reference.progress(1, 1)(*model.seen[0][2:])
    path = tmp_path / "scheduled.ckpt"
    trainer.save_checkpoint(path)
    assert not [k for k in torch.load(path, weights_only=True)["state_dict"] if "loss_fn" in k]
