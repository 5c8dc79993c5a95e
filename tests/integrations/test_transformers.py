"""A learned loss in transformers: inside a PreTrainedModel (post_init, save_pretrained,
from_pretrained, which builds models on the meta device) and as the Trainer's
``compute_loss_func``. Models are built from a config; nothing is downloaded."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainingArguments

from learnedloss import LearnedLoss


class TinyConfig(PretrainedConfig):
    model_type = "learnedloss-tiny-regressor"

    def __init__(self, width: int = 8, loss_name: str = "mse-fit", **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.loss_name = loss_name


class TinyRegressor(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__(config)
        self.body = nn.Sequential(nn.Linear(3, config.width), nn.Tanh(), nn.Linear(config.width, 1))
        self.loss_fn = LearnedLoss.from_pretrained(config.loss_name)
        self.post_init()  # runs _init_weights on every submodule

    def forward(self, x, labels=None):
        prediction = self.body(x)
        loss = None if labels is None else self.loss_fn(prediction, labels)
        return {"loss": loss, "logits": prediction}


def same_loss(loss_fn, name):
    reference = LearnedLoss.from_pretrained(name)
    x, y = torch.randn(16, 1), torch.randn(16, 1)
    return torch.equal(loss_fn(x, y), reference(x, y))


def test_post_init_leaves_a_held_loss_as_loaded():
    model = TinyRegressor(TinyConfig(loss_name="robust-regression"))
    assert same_loss(model.loss_fn, "robust-regression")
    assert all(not name.startswith("loss_fn") for name in model.state_dict())


def test_from_pretrained_on_the_meta_device_loads_the_loss_and_the_model(tmp_path):
    torch.manual_seed(0)
    model = TinyRegressor(TinyConfig())
    model.save_pretrained(tmp_path)
    loaded = TinyRegressor.from_pretrained(tmp_path)
    assert same_loss(loaded.loss_fn, "mse-fit")
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    # a checkpoint saved with one loss loads into a model holding another
    other = TinyRegressor.from_pretrained(tmp_path, loss_name="robust-regression")
    assert same_loss(other.loss_fn, "robust-regression")
    with torch.device("meta"):
        on_meta = TinyRegressor(TinyConfig())
    assert next(on_meta.body.parameters()).is_meta
    assert same_loss(on_meta.loss_fn, "mse-fit")


def quiet_arguments(output_dir) -> TrainingArguments:
    """Four CPU steps of batch 8, with nothing saved, logged or reported."""
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int = 32):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=generator)
        self.y = self.x.sum(dim=1, keepdim=True)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def test_trainer_with_a_learned_compute_loss_func(tmp_path):
    torch.manual_seed(0)
    model = TinyRegressor(TinyConfig())
    loss_fn = LearnedLoss.from_pretrained("mse-fit")
    seen = []

    def compute_loss(outputs, labels, num_items_in_batch=None):
        loss = loss_fn(outputs["logits"], labels)
        seen.append(loss.item())
        return loss

    args = quiet_arguments(tmp_path)
    body = [p.detach().clone() for p in model.body.parameters()]
    trainer = Trainer(model=model, args=args, train_dataset=Pairs(), compute_loss_func=compute_loss)
    trainer.train()
    assert len(seen) == 4 and all(torch.isfinite(torch.tensor(seen)))
    assert any(not torch.equal(a, b) for a, b in zip(body, model.body.parameters(), strict=True))
    assert same_loss(loss_fn, "mse-fit") and same_loss(model.loss_fn, "mse-fit")


def _progress_loss_directory(path):
    """A monotone regression loss over training progress whose curves differ, saved."""
    from learnedloss.starts import monotone_start_config

    loss = LearnedLoss(monotone_start_config("mse", adapt_to="progress"))
    with torch.no_grad():
        theta = loss.network.log_influence
        theta[2].copy_(torch.linspace(0.0, -2.0, theta.shape[1]))
    loss.save_pretrained(path)
    return str(path)


def test_a_trainer_callback_gives_a_held_progress_loss_its_schedule(tmp_path):
    from transformers import TrainerCallback

    name = _progress_loss_directory(tmp_path / "progress-loss")
    torch.manual_seed(0)
    model = TinyRegressor(TinyConfig(loss_name=name))
    seen = []

    class Schedule(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            model.loss_fn.progress(state.global_step, state.max_steps)
            seen.append(model.loss_fn.training_progress)

    values = []
    forward = model.forward

    def recording(x, labels=None):  # each step's loss, with what it was computed from
        out = forward(x, labels)
        values.append(
            (model.loss_fn.training_progress, out["loss"].detach(), out["logits"], labels)
        )
        return out

    model.forward = recording

    args = quiet_arguments(tmp_path / "out")
    Trainer(model=model, args=args, train_dataset=Pairs(), callbacks=[Schedule()]).train()
    assert seen == [0.0, 0.25, 0.5, 0.75]
    reference = LearnedLoss.from_pretrained(name)
    assert [progress for progress, *_ in values] == seen
    for progress, value, logits, labels in values:
        expected = reference.progress(progress, 1.0)(logits.detach(), labels)
        torch.testing.assert_close(value, expected)
    model.forward = forward
    assert all(not name.startswith("loss_fn") for name in model.state_dict())
    # saved and loaded on the meta device, the model's loss starts at its default progress
    model.save_pretrained(tmp_path / "model")
    loaded = TinyRegressor.from_pretrained(tmp_path / "model")
    assert loaded.loss_fn.training_progress == 1.0
    x, y = torch.randn(16, 1), torch.randn(16, 1)
    torch.testing.assert_close(loaded.loss_fn(x, y), LearnedLoss.from_pretrained(name)(x, y))
