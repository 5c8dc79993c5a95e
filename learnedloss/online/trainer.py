"""`OnlineLossTrainer`: learn the loss during the user's own training run (after AdaLFL)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torchopt
from torch import nn
from torchopt import pytree

from learnedloss.loss import LearnedLoss, finite_check_disabled
from learnedloss.online import lookahead as la
from learnedloss.online import options
from learnedloss.online.forms import SampleWeightedLoss, ScaleNormalizedLoss

Callback = Callable[["OnlineLossTrainer", dict], Any]

METHOD = "online loss learning (AdaLFL-style one-step look-ahead; learnedloss.online)"


class OnlineLossTrainer:
    """Train a model and adapt its loss function at the same time, in the user's own loop.

    Each adapting step (every ``adapt_every``-th call of `step`, starting with the first):

    1. updates the model with the learned loss through a differentiable torchopt step
       (the look-ahead ``θ' = θ + U(∇θ loss_φ(model_θ(x), y))``),
    2. scores the looked-ahead model on a validation batch with the task ``objective``,
    3. updates the loss network ``φ`` by the gradient of that score (second order, through
       the optimizer step), and commits ``θ'`` as the model's update.

    The model's committed update is the look-ahead one, computed with the loss as it was
    before its own update (as in AdaLFL, Raymond et al., arXiv 2301.13247). Steps in between
    are plain optimizer steps with the current loss and cost about as much as an ordinary
    training step. A non-finite objective or meta-gradient is never applied: the loss update
    is skipped, counted in ``skipped`` and reported in the step's record, with a
    ``RuntimeWarning`` at the 1st, 2nd, 4th, 8th, ... skip.

    The trainer owns a trainable *copy* of the loss: a `LearnedLoss` passed in (e.g. a frozen
    one from `LearnedLoss.from_pretrained`, which is a good offline warm start) is
    deep-copied and unfrozen, and never changed itself. ``trainer.loss`` is that live copy;
    `learned_loss` returns a frozen copy with provenance in its metadata, ready for
    ``save_pretrained`` or ``push_to_hub``.

    The model is updated in place (its ``nn.Parameter`` objects keep their identity), on its
    own device; the loss and the batches are moved to that device, and the loss to the
    model's floating dtype. Any model that ``torch.func.functional_call`` can run works,
    buffers included: BatchNorm's running statistics are updated by the training batch as in
    a plain step; the validation pass runs in the model's current mode on copies of the
    buffers, so it never changes them.

    Args:
        model: the model to train (``nn.Module``); its trainable parameters are updated.
        loss: where the loss starts: ``"mse"`` (exactly MSE, `mse_start_config`),
            ``"cross-entropy"`` (exactly cross-entropy, `cross_entropy_start_config`), a
            bundled loss's name (``"robust-regression"``, ``"noisy-labels"``, ...; its
            pretrained weights, thawed) or a `LearnedLoss` (copied and unfrozen; regression
            or classification, no side inputs).
        optimizer: the model's optimizer: ``"sgd"``, ``"adam"`` (torchopt, Adam with
            ``eps_root=1e-8``) or any torchopt ``GradientTransformation`` (then no ``lr``).
            Its state (Adam's moments) is carried from step to step.
        lr: the model's learning rate (with ``"sgd"`` or ``"adam"``).
        meta_optimizer: the loss network's optimizer: ``"adam"`` (default), ``"sgd"`` or a
            callable ``params -> torch.optim.Optimizer``.
        meta_lr: the loss network's learning rate (for ``"adam"`` and ``"sgd"``).
        objective: the task objective ``(prediction, target) -> scalar`` the loss is
            adapted to minimize on validation batches (default: ``nn.MSELoss()`` for a
            regression loss, ``nn.CrossEntropyLoss()`` for a classification loss). Any
            differentiable metric works.
        adapt_every: adapt the loss every this many steps; the others are plain steps.
            With ``lookahead_steps=k > 1``, a look-ahead window of ``k`` steps opens at the
            first step at or after each multiple of ``adapt_every`` that no window covers.
        lookahead_steps: how many of the model's steps the meta-gradient looks through
            (truncated back-propagation through ``k`` optimizer steps, each committed to the
            model as it is taken; the loss is updated at the window's last step, on that
            step's validation batch). 1 (default): AdaLFL's one-step look-ahead.
        form: how the loss enters the model's update: ``"loss"`` (default; the learned loss
            as it is, scale included), ``"shape"`` (the learned loss rescaled on every batch
            to the standard loss's gradient norm w.r.t. the predictions, so only its shape
            is learned; `ScaleNormalizedLoss`) or ``"sample-weights"`` (Meta-Weight-Net: the
            standard loss weighted per sample by a learned function of each sample's loss,
            weights of mean 1; `SampleWeightedLoss`; needs ``loss="mse"`` or
            ``"cross-entropy"``). See `learnedloss.online.forms`.
        validation: where validation batches come from when `step` is not given one: an
            iterable of ``(x_val, y_val)`` pairs (a DataLoader, a list); it is drawn from only
            on adapting steps and restarted when exhausted.
        autocast: ``torch.bfloat16`` or ``torch.float16`` to run the forward passes (model,
            loss and objective) under ``torch.autocast`` on the model's device; gradients,
            optimizer updates and the meta-gradient check stay in the parameters' dtype.
            float16 without loss scaling can underflow: prefer bfloat16. ``None`` (default):
            no autocast.
        callbacks: called as ``callback(trainer, record)`` after every step (progress bars,
            logging, `ShapeRecorder`).
        description: what the loss is learned on (free text), recorded in the metadata.
        seed: seeds the hidden layers of a ``"mse"`` / ``"cross-entropy"`` start.

    Attributes:
        loss: the live, trainable `LearnedLoss`.
        steps: steps taken; ``adapted``: steps that updated the loss; ``skipped``: loss
            updates skipped for a non-finite meta-gradient.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from learnedloss.online import OnlineLossTrainer
        >>> model = nn.Linear(3, 1)
        >>> trainer = OnlineLossTrainer(model, "mse", optimizer="sgd", lr=0.1, meta_lr=1e-3)
        >>> x, y = torch.randn(32, 3), torch.randn(32, 1)
        >>> record = trainer.step(x, y, x_val=x, y_val=y)
        >>> sorted(record)
        ['adapted', 'objective', 'skipped', 'step', 'train_loss']
        >>> learned = trainer.learned_loss()  # frozen, saves like any LearnedLoss
    """

    def __init__(
        self,
        model: nn.Module,
        loss: str | LearnedLoss = "mse",
        *,
        optimizer: str | torchopt.base.GradientTransformation = "sgd",
        lr: float | None = None,
        meta_optimizer: str
        | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
        | None = None,
        meta_lr: float = 1e-3,
        objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        adapt_every: int = 1,
        lookahead_steps: int = 1,
        form: str = "loss",
        validation: Iterable | None = None,
        autocast: torch.dtype | None = None,
        callbacks: Sequence[Callback] | Callback = (),
        description: str | None = None,
        seed: int = 0,
    ) -> None:
        # every argument is checked before any tensor is built or copied
        params = options.check_model(model)
        self.adapt_every = options.positive_int("adapt_every", adapt_every)
        self.lookahead_steps = options.positive_int("lookahead_steps", lookahead_steps)
        self.form = options.form(form, loss)
        bundled_name = loss if isinstance(loss, str) and loss not in options.STARTS else None
        loss = options.bundled_start(loss)
        self._optimizer, self.optimizer_name = options.inner_optimizer(optimizer, lr)
        self.lr = None if lr is None else options.positive_number("lr", lr)  # a plain float
        make_meta, self.meta_optimizer_name = options.meta_optimizer(meta_optimizer, meta_lr)
        self.meta_lr = options.positive_number("meta_lr", meta_lr)
        self.autocast = options.autocast_dtype(autocast)
        self.callbacks = options.callbacks(callbacks)
        self.description = options.description(description)
        self._validation = options.validation_source(validation)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.objective_kind = options.loss_kind(loss)
        self.objective = options.objective(objective, self.objective_kind)

        self.model = model
        self._params = params
        first = next(iter(params.values()))
        self.device = first.device
        self.loss, self.started_from = self._starting_loss(loss, seed)
        if bundled_name is not None:
            self.started_from = f"a copy of the bundled loss {bundled_name!r}"
        self.loss.to(device=self.device, dtype=first.dtype)
        self._train_loss = self.loss
        if self.form == "shape":
            self._train_loss = ScaleNormalizedLoss(self.loss, self.objective_kind)
        self._loss_params = {n: p for n, p in self.loss.named_parameters() if p.requires_grad}
        self.meta_optimizer = make_meta(list(self._loss_params.values()))
        if not isinstance(self.meta_optimizer, torch.optim.Optimizer):
            raise TypeError(
                "meta_optimizer must return a torch.optim.Optimizer, got "
                f"{type(self.meta_optimizer).__name__}"
            )
        self._state = self._optimizer.init(self._detached_params())
        self._validation_iter = None
        self._window: dict | None = None  # the open look-ahead window's graph-carrying state
        self.steps = 0
        self.adapted = 0
        self.skipped = 0

    # ------------------------------------------------------------------ stepping

    def step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        x_val: torch.Tensor | None = None,
        y_val: torch.Tensor | None = None,
    ) -> dict:
        """One training step of the model; on adapting steps also one update of the loss.

        Args:
            x: the training batch's inputs (moved to the model's device).
            y: the training batch's targets.
            x_val: the inputs of the validation batch the adapting step scores the
                looked-ahead model on; when omitted (with ``y_val``), drawn from
                ``validation``. Pass ``x, y`` again to score on the training batch. Ignored
                on plain steps.
            y_val: the targets of that validation batch.

        Returns:
            A record: ``step`` (steps taken), ``adapted`` (whether the loss was updated or
            tried to be), ``train_loss`` (the learned loss on the batch, before the step),
            ``objective`` (the validation objective after the look-ahead; ``None`` on plain
            steps) and ``skipped`` (the loss update was dropped for a non-finite
            meta-gradient).
        """
        options.batch_pair(x, y, "x, y")
        differentiable = self._window is not None or self.steps % self.adapt_every == 0
        taken = 0 if self._window is None else self._window["taken"]
        adapt = differentiable and taken + 1 == self.lookahead_steps
        if adapt:
            x_val, y_val = self._validation_batch(x_val, y_val)
        elif (x_val is None) != (y_val is None):
            raise ValueError("pass both x_val and y_val, or neither")
        x, y = x.to(self.device), y.to(self.device)
        with finite_check_disabled(self.loss):
            if adapt:
                record = self._adapt(x, y, x_val.to(self.device), y_val.to(self.device))
            elif differentiable:
                record = self._look_ahead(x, y)
            else:
                record = self._plain(x, y)
        self.steps += 1
        record = {"step": self.steps, "adapted": adapt, **record}
        for callback in self.callbacks:
            callback(self, record)
        return record

    def _look_ahead(self, x, y) -> dict:
        """One differentiable step inside the look-ahead window (opened here if none is):
        the model takes it, and the window keeps its graph back to the loss's parameters.
        The window starts from copies of the parameters, which the model's own in-place
        update would otherwise change under the graph."""
        if self._window is None:
            start = {n: p.detach().clone().requires_grad_(True) for n, p in self._params.items()}
            self._window = {"params": start, "state": self._state, "taken": 0}
        window = self._window
        new_params, new_state, train_loss = la.lookahead(
            self.model,
            window["params"],
            self._train_loss,
            self._optimizer,
            window["state"],
            x,
            y,
            self.autocast,
        )
        window.update(params=new_params, state=new_state, taken=window["taken"] + 1)
        with torch.no_grad():
            for name, p in self._params.items():
                p.copy_(new_params[name])
        self._state = la.detached(new_state)
        return {"train_loss": float(train_loss.detach()), "objective": None, "skipped": False}

    def _adapt(self, x, y, x_val, y_val) -> dict:
        window, self._window = self._window, None
        if window is None:
            params, state = self._params, self._state
        else:
            params, state = window["params"], window["state"]
        new_params, new_state, train_loss = la.lookahead(
            self.model, params, self._train_loss, self._optimizer, state, x, y, self.autocast
        )
        value = la.validation_objective(
            self.model, new_params, self.objective, x_val, y_val, self.autocast
        )
        grads = la.meta_gradient(value, self._loss_params)
        finite = la.all_finite(value, grads)
        self.adapted += 1
        if finite:
            for name, p in self._loss_params.items():
                p.grad = grads[name]
            self.meta_optimizer.step()
            self.meta_optimizer.zero_grad(set_to_none=True)
        else:
            self.skipped += 1
            if self.skipped & (self.skipped - 1) == 0:  # the 1st, 2nd, 4th, 8th, ... skip
                warnings.warn(
                    f"online step {self.steps + 1}: non-finite objective or meta-gradient "
                    f"(objective {float(value.detach()):.4g}); the loss update is skipped "
                    f"({self.skipped} skipped so far; this warning repeats at powers of two). "
                    "Lower lr or meta_lr if this repeats.",
                    RuntimeWarning,
                    stacklevel=3,
                )
        with torch.no_grad():
            for name, p in self._params.items():
                p.copy_(new_params[name])
        self._state = la.detached(new_state)
        return {
            "train_loss": float(train_loss.detach()),
            "objective": float(value.detach()),
            "skipped": not finite,
        }

    def _plain(self, x, y) -> dict:
        with la.forward_context(self.device, self.autocast):
            train_loss = self._train_loss(self.model(x), y)
        grads = la.gradients(train_loss, self._params, create_graph=False)
        with torch.no_grad():
            tree = dict(zip(self._params, grads, strict=True))
            updates, self._state = self._optimizer.update(
                tree, self._state, params=self._params, inplace=True
            )
            torchopt.apply_updates(self._params, updates, inplace=True)
        return {"train_loss": float(train_loss.detach()), "objective": None, "skipped": False}

    def _validation_batch(self, x_val, y_val):
        if (x_val is None) != (y_val is None):
            raise ValueError("pass both x_val and y_val, or neither")
        if x_val is not None:
            options.batch_pair(x_val, y_val, "x_val, y_val")
            return x_val, y_val
        if self._validation is None:
            raise ValueError(
                f"step {self.steps + 1} adapts the loss and needs a validation batch: pass "
                "x_val and y_val to step(), or validation= (an iterable of (x_val, y_val) "
                "batches) to OnlineLossTrainer"
            )
        batch = self._next_validation()
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(
                f"validation must yield (x_val, y_val) pairs, got {type(batch).__name__}"
            )
        options.batch_pair(batch[0], batch[1], "x_val, y_val")
        return batch[0], batch[1]

    def _next_validation(self):
        if self._validation_iter is not None:
            try:
                return next(self._validation_iter)
            except StopIteration:
                pass
        self._validation_iter = iter(self._validation)  # restart (a loader reshuffles)
        try:
            return next(self._validation_iter)
        except StopIteration:
            raise ValueError(
                "validation yielded no batches (it is empty, or a used-up iterator)"
            ) from None

    def _starting_loss(self, loss, seed: int) -> tuple[nn.Module, str]:
        if self.form != "sample-weights":
            return options.starting_loss(loss, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            weighted = SampleWeightedLoss(self.objective_kind)
        return weighted, f"exactly {loss}, weighted per sample (Meta-Weight-Net form, seed {seed})"

    def _detached_params(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self._params.items()}

    # ------------------------------------------------------------------ results

    def describe(self) -> dict:
        """How the loss was learned, JSON-ready (goes into `learned_loss`'s metadata)."""
        return {
            "method": METHOD,
            "learned_on": self.description,
            "started_from": self.started_from,
            "steps": self.steps,
            "adapted_steps": self.adapted,
            "skipped_updates": self.skipped,
            "adapt_every": self.adapt_every,
            "lookahead_steps": self.lookahead_steps,
            "form": self.form,
            "optimizer": self.optimizer_name,
            "lr": self.lr,
            "meta_optimizer": self.meta_optimizer_name,
            "meta_lr": self.meta_lr,
            "objective": _name(self.objective),
        }

    def learned_loss(self) -> LearnedLoss:
        """A frozen copy of the loss as it is now, with how it was learned in its metadata
        (``metadata["training"]``; a warm start's own record moves to ``"warm_start"``).

        With ``form="shape"`` this is the loss before the per-batch rescaling (the scale the
        trainer never used is arbitrary: under SGD, tune the lr for it again).

        Raises:
            TypeError: with ``form="sample-weights"``, whose weighting is no `LearnedLoss`
                (``trainer.loss`` is the live `SampleWeightedLoss`; save its ``state_dict``).
        """
        if self.form == "sample-weights":
            raise TypeError(
                "form='sample-weights' learns a per-sample weighting of the standard loss, not "
                "a LearnedLoss; trainer.loss is that SampleWeightedLoss module: use it as the "
                "loss, or save trainer.loss.state_dict()"
            )
        copied = copy.deepcopy(self.loss)
        metadata = dict(self.loss.metadata)
        previous = metadata.pop("training", None)
        training = self.describe()
        if previous is not None:
            training["warm_start"] = previous
        metadata["training"] = training
        if "description" not in metadata:
            on = f" on {self.description}" if self.description else ""
            metadata["description"] = (
                f"A loss learned online{on} while training the model "
                f"({self.steps} steps, adapted every {self.adapt_every})."
            )
        copied.metadata = metadata
        return copied.freeze()

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Everything needed to resume bit-identically: the model, the loss, the model
        optimizer's state, the meta-optimizer's state and the counters (copies, not views).

        The position in a ``validation`` iterable is not saved: a resumed run draws from
        it afresh (pass the batches to `step` to control them exactly)."""
        state = {
            "steps": self.steps,
            "adapted": self.adapted,
            "skipped": self.skipped,
            "settings": self._settings(),
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": pytree.tree_leaves(self._state),
            "meta_optimizer": self.meta_optimizer.state_dict(),
        }
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved. The trainer must be built with the same model
        architecture, loss architecture and optimizer kind."""
        missing = {
            "steps",
            "adapted",
            "skipped",
            "settings",
            "model",
            "loss",
            "optimizer",
            "meta_optimizer",
        } - set(state)
        if missing:
            raise ValueError(f"not an OnlineLossTrainer state: missing {sorted(missing)}")
        ours = self._settings()
        if state["settings"] != ours:
            raise ValueError(
                f"the saved trainer was built differently: saved {state['settings']}, this one "
                f"{ours}; build the trainer with the same loss and optimizer to resume"
            )
        template = self._optimizer.init(self._detached_params())
        leaves, spec = pytree.tree_flatten(template)
        saved = state["optimizer"]
        if len(saved) != len(leaves) or any(
            a.shape != b.shape for a, b in zip(saved, leaves, strict=True)
        ):
            raise ValueError("the saved optimizer state does not fit this model's parameters")
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self._state = pytree.tree_unflatten(
            spec, [s.to(t.device).clone() for s, t in zip(saved, leaves, strict=True)]
        )
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])
        self._window = None
        self.steps, self.adapted, self.skipped = state["steps"], state["adapted"], state["skipped"]

    def _settings(self) -> dict:
        weighted = isinstance(self.loss, SampleWeightedLoss)
        settings = {
            "optimizer": self.optimizer_name,
            "loss_config": self.loss.describe() if weighted else repr(self.loss.config),
            "meta_optimizer": self.meta_optimizer_name,
        }
        if self.form != "loss" or self.lookahead_steps != 1:  # checkpoints of 0.1 stay loadable
            settings.update(form=self.form, lookahead_steps=self.lookahead_steps)
        return settings


def _name(fn: Any) -> str:
    if isinstance(fn, nn.Module):
        return type(fn).__name__ + "()"
    return getattr(fn, "__name__", type(fn).__name__)
